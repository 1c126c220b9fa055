//! The HTML pages a person (or a script with curl) clicks through: the OAuth consent page
//! and the device-code verification page, with their result pages. Plain forms with
//! stable ids and names so browsers, curl and headless tests can all drive them.

use crate::util::html_escape as esc;

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{t}</title>\n\
<style>body{{font-family:sans-serif;max-width:36em;margin:4em auto;padding:0 1em}}\
button{{font-size:1.1em;margin-right:1em;padding:.4em 1.2em}}#approve{{background:#4c6fff;color:#fff;border:0}}\
code{{background:#eee;padding:0 .3em}}</style>\n</head>\n<body>\n<h1>{t}</h1>\n{body}\n\
<p><small>coze-fake: a local stand-in for Coze. Nothing here is real.</small></p>\n</body>\n</html>\n",
        t = esc(title)
    )
}

/// Consent page for an authorize request waiting under `key`.
pub fn consent(key: &str, client_id: &str, redirect_uri: &str) -> String {
    page(
        "Authorize application",
        &format!(
            "<p>The application <code id=\"client_id\">{c}</code> wants to access your Coze account.</p>\n\
<p>After you decide you will be sent to <code id=\"redirect_uri\">{r}</code>.</p>\n\
<form method=\"POST\" action=\"/oauth/consent\">\n\
<input type=\"hidden\" name=\"authorize_key\" value=\"{k}\">\n\
<button type=\"submit\" id=\"approve\" name=\"decision\" value=\"approve\">Approve</button>\n\
<button type=\"submit\" id=\"deny\" name=\"decision\" value=\"deny\">Deny</button>\n\
</form>",
            c = esc(client_id),
            r = esc(redirect_uri),
            k = esc(key)
        ),
    )
}

/// Device verification page, the user code prefilled when known.
pub fn device(user_code: &str) -> String {
    page(
        "Connect a device",
        &format!(
            "<p>Enter the code shown by your device or command-line program.</p>\n\
<form method=\"POST\" action=\"/oauth/device\">\n\
<p><label>Code <input type=\"text\" id=\"user_code\" name=\"user_code\" value=\"{u}\" autocomplete=\"off\"></label></p>\n\
<button type=\"submit\" id=\"approve\" name=\"decision\" value=\"approve\">Approve</button>\n\
<button type=\"submit\" id=\"deny\" name=\"decision\" value=\"deny\">Deny</button>\n\
</form>",
            u = esc(user_code)
        ),
    )
}

/// Result page after a device decision.
pub fn device_done(approved: bool, user_code: &str) -> String {
    if approved {
        page(
            "Device approved",
            &format!("<p id=\"result\">approved: the device with code <code>{}</code> is now signed in. You can close this page.</p>", esc(user_code)),
        )
    } else {
        page(
            "Device denied",
            &format!(
                "<p id=\"result\">denied: the device with code <code>{}</code> was refused.</p>",
                esc(user_code)
            ),
        )
    }
}

pub fn error(title: &str, msg: &str) -> String {
    page(title, &format!("<p id=\"error\">{}</p>", esc(msg)))
}
