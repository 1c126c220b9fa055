#!/usr/bin/env python3
"""Writes the man pages (man/*.1) and the shell completions (completions/) from the
programs' own --help, so they never disagree with it: the help text is the one source;
this only turns it into roff, bash, zsh and fish.

    python3 scripts/gen-man.py [--bin-dir target/debug] [--out man]
                               [--completions completions]

`make man` runs it after a build; tests/packaging.rs runs it into a temporary
directory and fails (saying "run make man") when the result differs from the
checked-in files.

What it reads in a --help text (the layout every coze tool's help follows):
  - the first paragraph, "prog: what it does"              -> NAME
  - USAGE: indented lines                                  -> SYNOPSIS
    and the unindented paragraphs after them               -> DESCRIPTION
  - OPTIONS:, and any section whose items are flags        -> OPTIONS (.SS per group)
  - ENVIRONMENT:, plus every "[env: NAME]" on an option    -> ENVIRONMENT
  - EXAMPLES:                                              -> EXAMPLES
  - EXIT STATUS                                            -> EXIT STATUS
  - any other SECTION:                                     -> its own section, as is
FILES (the token file) and SEE ALSO are added here. Pages carry no date, so a
regeneration from unchanged help is byte-identical.
"""

import argparse
import os
import re
import subprocess
import sys

# (page, command line after the binary, binary)
PAGES = [
    ("coze-auth", ["--help"], "coze-auth"),
    ("coze-auth-doctor", ["doctor", "--help"], "coze-auth"),
    ("coze-token", ["--help"], "coze-token"),
    ("coze-conv", ["--help"], "coze-conv"),
    ("coze-chat", ["--help"], "coze-chat"),
    ("coze-file", ["--help"], "coze-file"),
    ("coze-workflow", ["--help"], "coze-workflow"),
    ("coze-bot", ["--help"], "coze-bot"),
    ("coze-fake", ["--help"], "coze-fake"),
]

TOKEN_FILE_PAGES = {
    "coze-auth-doctor",
    "coze-token",
    "coze-conv",
    "coze-chat",
    "coze-file",
    "coze-workflow",
    "coze-bot",
}

FILES = r""".TP
.I $XDG_CONFIG_HOME/coze/token.json
The token file (\fI~/.config/coze/token.json\fR when \fBXDG_CONFIG_HOME\fR is unset;
\fB\-\-token\-file\fR or \fBCOZE_TOKEN_FILE\fR name another): one JSON \fBtoken\fR
record, written by \fBcoze\-token\fR with mode 0600 and replaced atomically.
.TP
.I $XDG_CONFIG_HOME/coze/token.json.lock
Beside it: the lock that makes refreshes single\-flight across processes.
"""

# Variables a help text names in passing (not as an option's [env: ...]).
MENTIONED_ENV = {
    "COZE_API_TOKEN": r"A bare access token or personal access token (PAT), used as is and "
    r"never refreshed, when neither \fB\-\-token\-file\fR nor \fBCOZE_TOKEN_FILE\fR is given.",
    "XDG_CONFIG_HOME": r"Where the default token file lives (see \fBFILES\fR).",
}

HEADING = re.compile(r"^[A-Z][^a-z]*?(\s\([^)]*\))?[^a-z]*?:?$")


def roff(text):
    """Escapes text for a roff text line."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    if text.startswith((".", "'")):
        text = "\\&" + text
    return text


def macro_arg(text):
    """Escapes text for a macro line (.SH, .SS): roff() plus the double quote."""
    return roff(text).replace('"', "\\(dq")


def is_heading(line):
    if not line or line[0] == " " or len(line) > 100:
        return False
    outside = re.sub(r"\([^)]*\)", "", line)
    return bool(HEADING.match(line)) and not re.search(r"[a-z]", outside)


def sections(help_text):
    """(name paragraph, [(heading, [lines])]) in the order of the help."""
    lines = help_text.rstrip("\n").split("\n")
    i = 0
    name = []
    while i < len(lines) and lines[i].strip():
        name.append(lines[i].strip())
        i += 1
    out = []
    for line in lines[i:]:
        if is_heading(line):
            out.append((line.rstrip(":").strip(), []))
        elif out:
            out[-1][1].append(line.rstrip())
        elif line.strip():
            out.append(("", [line.rstrip()]))
    for _, body in out:
        while body and not body[-1].strip():
            body.pop()
        while body and not body[0].strip():
            body.pop(0)
    return " ".join(name), out


ITEM = re.compile(r"^ {2,6}(\S(?:.*?\S)?)(?: {2,}(\S.*))?$")


def items(body):
    """Splits an indented list into (term, [description lines]). A term is a line
    indented 2-6 spaces; deeper lines continue the description."""
    out = []
    for line in body:
        if not line.strip():
            if out:
                out[-1][1].append("")
            continue
        indent = len(line) - len(line.lstrip())
        m = ITEM.match(line)
        if m and indent <= 6:
            out.append((m.group(1), [m.group(2)] if m.group(2) else []))
        elif out:
            out[-1][1].append(line.strip())
        else:
            out.append(("", [line.strip()]))
    for _, desc in out:
        while desc and not desc[-1]:
            desc.pop()
    return out


def is_option_list(body):
    terms = [t for t, _ in items(body) if t]
    return bool(terms) and sum(t.startswith("-") for t in terms) * 2 > len(terms)


def flag_term(term):
    """`-o, --output MODE` -> bold flags, italic arguments."""
    parts = []
    for alt in term.split(", "):
        words = alt.split(" ")
        flag = "\\fB" + roff(words[0]) + "\\fR"
        args = " ".join(words[1:])
        parts.append(flag + (" \\fI" + roff(args) + "\\fR" if args else ""))
    return ", ".join(parts)


BREAK_BEFORE = re.compile(r"^(\[default:|\[env:|[a-z_]+:\s)")


def description(desc):
    """Description lines: filled, but a default, an env note or a `label:` sub-item
    starts a new line, and a blank line a new paragraph."""
    out = []
    for j, line in enumerate(desc):
        if not line:
            out.append(".sp")
            continue
        if j > 0 and desc[j - 1] and BREAK_BEFORE.match(line):
            out.append(".br")
        out.append(roff(line))
    return out


def verbatim(body, strip=4):
    out = [".nf", ".RS 4"]
    for line in body:
        text = line[strip:] if line.startswith(" " * strip) else line.lstrip()
        out.append(roff(text) if text else "")
    out += [".RE", ".fi"]
    return out


def paragraphs(body):
    """Filled paragraphs; an indented block (a table in the help) stays as it is."""
    out = []
    para = []
    for line in body + [""]:
        if line.strip():
            para.append(line)
        elif para:
            if para[0].startswith(" "):
                out += [".PP"] + verbatim(para)
            else:
                out += [".PP"] + [roff(p.strip()) for p in para]
            para = []
    return out


def page(page_name, help_text, version, binary):
    name_para, secs = sections(help_text)
    prog, _, summary = name_para.partition(": ")
    title = page_name.upper()
    out = [
        f'.\\" Generated by scripts/gen-man.py from `{binary} ...--help`; do not edit.',
        f'.\\" Run `make man` after changing a help text.',
        f'.TH {roff(title)} 1 "" "coze\\-tools {version}" "User Commands"',
        ".SH NAME",
        f"{roff(page_name)} \\- {roff(summary)}",
    ]
    synopsis, desc, options, custom, exit_status, env, examples = [], [], [], [], [], [], []
    env_from_flags = []
    for heading, body in secs:
        key = heading.upper()
        if key in ("USAGE", ""):
            for line in body:
                indent = len(line) - len(line.lstrip())
                if indent > 8 and synopsis and not desc:
                    # A note continued under the previous command's note.
                    note = roff(line.strip())
                    if "\\(em" not in synopsis[-2]:
                        note = "\\(em " + note
                    synopsis.insert(len(synopsis) - 1, note)
                elif line.startswith("    ") and not desc:
                    # A trailing note after a wide gap: "coze-auth ... --paste   browser on..."
                    m = re.match(r"^(.*?\S)(?: {3,}(\S.*))?$", line.strip())
                    cmd, note = m.group(1), m.group(2)
                    words = cmd.split(" ", 1)
                    text = "\\fB" + roff(words[0]) + "\\fR"
                    if len(words) > 1:
                        text += " " + roff(words[1])
                    if note:
                        text += "  \\(em " + roff(note)
                    synopsis += [text, ".br"]
                elif line.strip() or desc:
                    desc.append(line)
        elif key == "OPTIONS" or (is_option_list(body) and key != "ENVIRONMENT"):
            if key != "OPTIONS":
                options.append(".SS " + macro_arg(heading))
            for term, d in items(body):
                for m in re.finditer(r"\[env: ([A-Z_]+)([^\]]*)", " ".join(d)):
                    flag = term.split(" ")[0].split(",")[0]
                    env_from_flags.append((m.group(1), flag, m.group(2).strip()))
                if not term:
                    options += [".PP"] + description(d)
                    continue
                # "--connect-timeout SECS [default: 10]": the note is description.
                m = re.match(r"^(.*?) (\[(?:default|env):.*\])$", term)
                if m:
                    term, d = m.group(1), [m.group(2)] + d
                options += [".TP", flag_term(term)] + description(d)
        elif key.startswith("EXIT STATUS"):
            its = items(body)
            if all(t and re.match(r"^\d+", t) for t, _ in its):
                for term, d in its:
                    num, _, rest = term.partition(" ")
                    exit_status += [".TP", "\\fB" + num + "\\fR"] + description(
                        ([rest.strip()] if rest.strip() else []) + d
                    )
            else:
                exit_status += paragraphs([line.strip() for line in body])
        elif key == "ENVIRONMENT":
            for term, d in items(body):
                env += [".TP", "\\fB" + roff(term) + "\\fR"] + description(d)
        elif key == "EXAMPLES":
            examples += verbatim(body)
        else:
            custom += [".SH " + macro_arg(heading)] + verbatim(body)
    # Synopsis ends without a dangling break.
    if synopsis and synopsis[-1] == ".br":
        synopsis.pop()
    seen = set()
    for var, flag, note in env_from_flags:
        if var in seen:
            continue
        seen.add(var)
        text = f"Instead of {flag_term(flag)}: {roff(note)}." if note else f"As {flag_term(flag)}; the flag wins."
        env += [".TP", "\\fB" + roff(var) + "\\fR", text]
    for var, text in MENTIONED_ENV.items():
        if var not in seen and re.search(r"\b" + var + r"\b", help_text):
            env += [".TP", "\\fB" + roff(var) + "\\fR", text]

    out += [".SH SYNOPSIS", ".nh", ".ad l"] + synopsis + [".ad", ".hy"]
    # Description: the paragraphs after the synopsis, where any label-led paragraph
    # ("SERVICE APPS (JWT): ...") stays a paragraph.
    if desc:
        out += [".SH DESCRIPTION"] + paragraphs(desc)
    if options:
        out += [".SH OPTIONS"] + options
    out += custom
    if exit_status:
        out += [".SH EXIT STATUS"] + exit_status
    if env:
        out += [".SH ENVIRONMENT"] + env
    if page_name in TOKEN_FILE_PAGES:
        out += [".SH FILES"] + FILES.rstrip("\n").split("\n")
    if examples:
        out += [".SH EXAMPLES"] + examples
    others = [p for p, _, _ in PAGES if p != page_name]
    see = ",\n".join(f".BR {roff(p)} (1)" for p in others)
    out += [".SH SEE ALSO", see, ".PP", "The README of coze\\-tools: \\fImake demo\\fR, recipes, the JSON\\-lines records."]
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------ completions

# Subcommands, with what they do. The help's USAGE lines must name no others: a new
# subcommand is added here, and generation fails until it is.
SUBCOMMANDS = {
    "coze-auth": [("doctor", "check the setup, one line per check")],
    "coze-token": [
        ("refresh", "refresh the token file now"),
        ("print", "print the bare access token, refreshed if needed"),
        ("status", "what the credentials in use hold (exit 0 usable, 4 not)"),
        ("whoami", "the user the token belongs to, asked of the server"),
        ("exec", "run a command with COZE_API_TOKEN set"),
        ("profiles", "list the profiles and their state"),
        ("logout", "remove a profile's tokens"),
    ],
    "coze-conv": [
        ("create", "create a conversation"),
        ("get", "show one conversation"),
        ("list", "list a bot's conversations"),
        ("clear", "start a new section: the bot forgets, the messages stay"),
        ("delete", "delete a conversation"),
        ("messages", "list a conversation's messages"),
    ],
    "coze-chat": [],
    "coze-file": [
        ("upload", "upload files, one file record each"),
        ("get", "show an uploaded file's record"),
    ],
    "coze-workflow": [
        ("run", "run a workflow: once, or once per stdin line"),
        ("status", "read runs' histories, one result record each"),
        ("resume", "answer the questions runs stopped at"),
    ],
    "coze-bot": [
        ("list", "list the bots of one workspace or of all"),
        ("get", "show one bot's whole configuration"),
        ("workspaces", "list the workspaces the token sees"),
    ],
    "coze-fake": [],
}


def usage_subcommands(prog, help_text):
    _, secs = sections(help_text)
    found = []
    for heading, body in secs:
        if heading.upper() != "USAGE":
            continue
        for line in body:
            words = line.split()
            if len(words) > 1 and words[0] == prog and re.fullmatch(r"[a-z]+", words[1]):
                found.append(words[1])
    return found


def flags_of(help_text):
    """[(short, long, arg, choices, description)] from a help's option lists."""
    _, secs = sections(help_text)
    out = []
    for heading, body in secs:
        if not (heading.upper() == "OPTIONS" or is_option_list(body)):
            continue
        if heading.upper() == "ENVIRONMENT":
            continue
        for term, d in items(body):
            if not term.startswith("-"):
                continue
            term = re.sub(r" \[(?:default|env):.*\]$", "", term)
            short = long = arg = None
            for alt in term.split(", "):
                words = alt.split(" ", 1)
                if words[0].startswith("--"):
                    long = words[0][2:]
                else:
                    short = words[0][1:]
                if len(words) > 1:
                    arg = words[1]
            choices = []
            if arg and re.fullmatch(r"[a-z]+(\|[a-z]+)+", arg):
                choices = arg.split("|")
            elif arg == "MODE":
                choices = [m.group(1) for line in d if (m := re.match(r"^([a-z]+):\s", line))]
            summary = " ".join(d).split(" [")[0].strip()
            summary = re.split(r"(?<=[a-z)])[;.] ", summary)[0]
            out.append((short, long, arg, choices, summary))
    return out


def is_file_arg(arg):
    return bool(arg) and arg.strip("[]") in ("PATH", "FILE")


def collect(bin_dir):
    """Every program: its flags (with its subcommands' flags) and subcommands."""
    progs = {}
    for page_name, argv, binary in PAGES:
        text = run_help(bin_dir, binary, argv)
        p = progs.setdefault(binary, {"flags": [], "subs": SUBCOMMANDS[binary]})
        seen = {f[1] or f[0] for f in p["flags"]}
        p["flags"] += [f for f in flags_of(text) if (f[1] or f[0]) not in seen]
        if argv == ["--help"]:
            known = {name for name, _ in SUBCOMMANDS[binary]}
            for sub in usage_subcommands(binary, text):
                if sub not in known:
                    sys.exit(
                        f"gen-man.py: {binary} --help names a subcommand {sub!r} that "
                        f"SUBCOMMANDS in scripts/gen-man.py does not list: add it there"
                    )
    return progs


def bash_completion(prog, spec):
    fn = "_" + prog.replace("-", "_")
    words = []
    file_flags, value_flags, choice_cases = [], [], []
    for short, long, arg, choices, _ in spec["flags"]:
        names = [f"--{long}"] if long else []
        names += [f"-{short}"] if short else []
        words += names
        if not arg:
            continue
        if choices:
            choice_cases.append(
                f'        {"|".join(names)})\n'
                f'            COMPREPLY=($(compgen -W "{" ".join(choices)}" -- "$cur"))\n'
                f"            return ;;"
            )
        elif is_file_arg(arg):
            file_flags += names
        else:
            value_flags += names
    subs = " ".join(name for name, _ in spec["subs"])
    lines = [
        f"# bash completion for {prog}. Generated by scripts/gen-man.py from `{prog} --help`;",
        "# do not edit (run `make man`). Needs nothing but bash; installed into",
        "# share/bash-completion/completions/ it is loaded on first use.",
        f"{fn}() {{",
        "    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}",
        "    local i",
        "    COMPREPLY=()",
        "    # After `--` come a command and its arguments (coze-token exec -- CMD ...).",
        "    for ((i = 1; i < COMP_CWORD; i++)); do",
        '        if [[ ${COMP_WORDS[i]} == -- ]]; then',
        '            if ((i == COMP_CWORD - 1)); then COMPREPLY=($(compgen -c -- "$cur")); else COMPREPLY=($(compgen -f -- "$cur")); fi',
        "            return",
        "        fi",
        "    done",
        '    case $prev in',
    ]
    lines += choice_cases
    if file_flags:
        lines += [
            f'        {"|".join(file_flags)})',
            '            compopt -o filenames 2>/dev/null',
            '            COMPREPLY=($(compgen -f -- "$cur"))',
            "            return ;;",
        ]
    if value_flags:
        lines += [f'        {"|".join(value_flags)})', "            return ;;"]
    lines += [
        "    esac",
        "    if [[ $cur == -* ]]; then",
        f'        COMPREPLY=($(compgen -W "{" ".join(words)}" -- "$cur"))',
        "        return",
        "    fi",
    ]
    if subs:
        lines += [
            "    # The subcommand, unless one is there already.",
            "    for ((i = 1; i < COMP_CWORD; i++)); do",
            f'        case ${{COMP_WORDS[i]}} in {subs.replace(" ", "|")}) return ;; esac',
            "    done",
            f'    COMPREPLY=($(compgen -W "{subs}" -- "$cur"))',
        ]
    lines += ["}", f"complete -F {fn} {prog}", ""]
    return "\n".join(lines)


def zsh_quote(text):
    return text.replace("\\", "\\\\").replace("'", "'\\''").replace("[", "\\[").replace(
        "]", "\\]"
    ).replace(":", "\\:")


def zsh_completion(prog, spec):
    specs = []
    for short, long, arg, choices, desc in spec["flags"]:
        d = zsh_quote(desc)
        if choices:
            action = f":{long or short}:({' '.join(choices)})"
        elif is_file_arg(arg):
            action = ":file:_files"
        elif arg:
            action = f":{zsh_quote(arg.lower())}: "
        else:
            action = ""
        if arg and arg.startswith("["):
            action = ":" + action  # an optional value
        if short and long:
            specs.append(f"'(-{short} --{long})'{{-{short},--{long}}}'[{d}]{action}'")
        elif long:
            specs.append(f"'--{long}[{d}]{action}'")
        else:
            specs.append(f"'-{short}[{d}]{action}'")
    if spec["subs"]:
        described = " ".join(
            name + "\\:" + zsh_quote(desc).replace(" ", "\\ ") for name, desc in spec["subs"]
        )
        specs.append(f"'1:command:(({described}))'")
        specs.append("'*::argument:_default'")
    else:
        specs.append("'*::argument:_default'")
    fn = "_" + prog
    lines = [
        f"#compdef {prog}",
        f"# zsh completion for {prog}. Generated by scripts/gen-man.py from `{prog} --help`;",
        "# do not edit (run `make man`). Installed into a directory on $fpath",
        "# (share/zsh/site-functions), compinit loads it.",
        "",
        f"{fn}() {{",
        "    _arguments -s -S \\",
    ]
    lines += [f"        {s} \\" for s in specs[:-1]] + [f"        {specs[-1]}", "}", "", f'{fn} "$@"', ""]
    return "\n".join(lines)


def fish_quote(text):
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def fish_completion(prog, spec):
    lines = [
        f"# fish completion for {prog}. Generated by scripts/gen-man.py from `{prog} --help`;",
        "# do not edit (run `make man`). Installed into share/fish/vendor_completions.d.",
        f"complete -c {prog} -f",
    ]
    for name, desc in spec["subs"]:
        lines.append(
            f"complete -c {prog} -n __fish_use_subcommand -a {name} -d {fish_quote(desc)}"
        )
    for short, long, arg, choices, desc in spec["flags"]:
        parts = [f"complete -c {prog}"]
        if short:
            parts.append(f"-s {short}")
        if long:
            parts.append(f"-l {long}")
        if choices:
            parts.append(f"-x -a {fish_quote(' '.join(choices))}")
        elif is_file_arg(arg):
            parts.append("-r -F")
        elif arg:
            parts.append("-x")
        parts.append(f"-d {fish_quote(desc)}")
        lines.append(" ".join(parts))
    return "\n".join(lines) + "\n"


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def run_help(bin_dir, binary, argv):
    exe = os.path.join(bin_dir, binary)
    if not os.access(exe, os.X_OK):
        sys.exit(f"gen-man.py: no {exe}: build first (make build)")
    env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C.UTF-8"}
    return subprocess.run([exe] + argv, env=env, check=True, capture_output=True, text=True).stdout



def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin-dir", default="target/debug")
    ap.add_argument("--out", default="man", help="where the man pages go")
    ap.add_argument("--completions", default="completions", help="where the completions go")
    args = ap.parse_args()
    for page_name, argv, binary in PAGES:
        help_text = run_help(args.bin_dir, binary, argv)
        version_line = run_help(args.bin_dir, binary, ["--version"])
        version = version_line.split()[1] if len(version_line.split()) > 1 else "unknown"
        write(os.path.join(args.out, page_name + ".1"), page(page_name, help_text, version, binary))
    for prog, spec in collect(args.bin_dir).items():
        write(os.path.join(args.completions, "bash", prog), bash_completion(prog, spec))
        write(os.path.join(args.completions, "zsh", "_" + prog), zsh_completion(prog, spec))
        write(os.path.join(args.completions, "fish", prog + ".fish"), fish_completion(prog, spec))


if __name__ == "__main__":
    main()
