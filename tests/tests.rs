//! End-to-end tests: the real binaries against coze-fake over loopback, real files,
//! real processes, real signals. Each module is one tool or one concern; the comment
//! above each says which behaviour family it covers, so a new test goes where its
//! neighbours are. Run one family with `cargo test --test tests chat_signals::`.

// ---- The harness and the servers the tests stand up.

// Sandbox, logged_in, both_dialects!: a directory, a fake and a deadline per test.
mod util;
// A SOCKS4/4a/5 proxy on loopback that records what each client asked for.
mod socks_server;

// ---- One tool each.

// What every tool does alike: --help, --version, usage errors.
mod basics;
// coze-auth's logins: stand-in browsers (bash + curl) on the consent page, --paste.
mod auth;
// coze-auth's logins with headless Chromium doing the person's part.
mod browser;
// coze-auth doctor: one line per check, the exit status the worst one calls for.
mod doctor;
// coze-token: exchange, refresh rotation, single-flight, print, status (--check), whoami,
// exec, device.
mod token;
// The token file as a file: symlinks, 0600, a full disk, errors naming credentials.
mod token_files;
// Unattended logins: a service app's JWT and a web app's client secret.
mod jwt;
// Several accounts: --profile, COZE_PROFILE, `coze-token profiles` and `logout`.
mod profiles;
// coze-conv: each subcommand, pages in both orders, failures, usage errors.
mod conv;
// coze-file: uploads and lookups, bad files refused first, retried, cut and shrinking
// uploads, the progress line on a terminal.
mod file;
// coze-chat: output modes, input shapes, conversations, UTF-8, --no-stream (helpers).
mod chat;
// coze-chat's failures: each shape's exit code, cut and idle streams, retries, tokens.
mod chat_failures;
// coze-chat --tool: a bot's tool calls answered by real programs, their failures,
// rounds, Ctrl-C, a chat left waiting (exit 7).
mod tools;
// coze-chat stopped from outside: Ctrl-C, SIGTERM, SIGHUP, `| head -1`.
mod chat_signals;
// coze-chat as a chat at the terminal, driven under a pty: the bot's introduction, the
// prompt, numbered suggestions, history, /new, Ctrl-C, Ctrl-D, dumb terminals, pipes.
mod terminal;
// coze-chat never loses an answer: a broken stream followed by polling; error records.
mod recovery;
// coze-chat and a conversation busy with another chat (4016): --busy-wait.
mod busy;
// coze-chat as a batch runner: --jobs, --rate, --resume/--append, --ordered, summary.
mod batch;
// More batch: a closed stdout under --jobs, back-off from 429s, appending runs.
mod batch_more;
// coze-chat's attachments: --attach, file records, a prompt's own; uploads once per run.
mod attach;
// coze-chat --workflow: chatflows in every output mode, their questions on a terminal
// and in a pipeline (exit 7), string failure codes, the trace, a cut stream.
mod chatflow;
// coze-workflow: parameters in every form, stream/sync/async/status, the output modes,
// interrupts at a terminal and in a pipeline, errors that say what to do, bad input.
mod workflow;
// coze-workflow as a batch runner: 1,000 runs through 5xx and 429, a SIGKILLed batch
// resumed, --ordered, the summary and the first failure's exit status.
mod workflow_batch;
// The progress line of a batch (coze-chat, coze-workflow) under a pty: done/total,
// erased at the end and on Ctrl-C, warnings above it; never on a pipe; the flags.
mod progress;
// coze-bot: bots of every workspace across pages, workspaces, a bot's configuration;
// tables on a terminal, records on a pipe; unknown bots, missing permissions, Studio.
mod bot;

// ---- Cross-cutting concerns.

// The fault matrix: every API call × every fault, against tests/fault-matrix*.expected.
mod faults;
// Secrets stay secret: no token or code in any stderr, argv, file or error record.
mod secrets;
// The token store under SIGKILL at 200 points of a refresh: the file is never torn.
mod crash;
// Load: 2,000 prompts in one process, 8 processes sharing one short-lived token.
mod load;
// What goes in and out: bounded lines, stdin records, control characters on a tty.
mod input;
// The proxy variables reach the requests (its CONNECT proxy shows other tests the wire).
mod proxy;
// HTTPS as curl does it: the CA sources a person uses, refusals not retried.
mod tls;
// A self-hosted Coze Studio: PAT only, endpoints it lacks, its shapes and logids.
mod studio;
// The scripts in scripts/examples/, run as a user would run them.
mod examples;
// The tools as installed: man pages, completions, make install, --version.
mod packaging;
