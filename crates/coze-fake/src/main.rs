//! The `coze-fake` binary: parse flags (lexopt), start the fake, print one ready line
//! (`{"type":"fake","base_url":...}`) and serve until stdin reaches EOF or SIGTERM.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use coze_fake::{Dialect, Fake, Options, TlsOptions, ADMIN_ENDPOINTS, FAULT_TYPES};

fn help() -> String {
    let mut h = String::from(
        "coze-fake: a faithful local stand-in for the Coze HTTP API (OAuth PKCE, device, web-app and
JWT service-app flows, conversations, messages, Chat v3 streaming and polled, local tools
(submit_tool_outputs), files, workflows, workspaces and bots),
for tests, demos and scripts.

USAGE:
    coze-fake [OPTIONS]

When ready it prints one line on stdout, {\"type\":\"fake\",\"base_url\":\"http://127.0.0.1:PORT\"}
(https://... when serving TLS; with --tls-ca-out also \"ca_file\":\"PATH\"), and serves until its
stdin reaches EOF or it gets SIGTERM. The base URL is both the API base and the web base
(authorize URL: BASE/api/permission/oauth2/authorize?...).

OPTIONS:
    --addr ADDR              listen address, loopback only [default: 127.0.0.1:0 (free port)]
    --auto-approve           authorize redirects straight back with a code (no consent page)
    --token-ttl S            access token lifetime in seconds [default: 900]
    --refresh-ttl S          refresh token lifetime in seconds [default: 2592000 (30 days)]
    --device-interval S      device flow polling interval in seconds [default: 5]
    --device-ttl S           device code lifetime in seconds [default: 300]
    --chat-latency-ms MS     how long each chat takes to start answering [default: 0]
    --delta-delay-ms MS      pause between answer deltas [default: 0]
    --pat TOKEN              also accept TOKEN as a bearer token (repeatable; e.g. pat_...)
    --jwt-public-key PATH    PEM public key (BEGIN PUBLIC KEY, e.g. from openssl pkey -pubout)
                             that service-app JWTs must be signed with; without it every JWT
                             grant is refused. Checked: RS256 signature, header alg and kid,
                             aud = this server's host:port, exp in the future and after iat,
                             iat at most 60 s ahead, jti never reused. Failures answer HTTP 401
                             invalid_client naming the check; success {\"access_token\":\"czs_...\",
                             \"expires_in\":<now+duration_seconds>}, no refresh token
    --jwt-kid KID            JWT headers must carry this kid [default: any]
    --client-secret ID=SECRET
                             ID is a web app (repeatable): its code exchange and refresh need
                             Authorization: Bearer SECRET (else 401 invalid_client); its
                             authorize needs no PKCE
    --dialect coze|studio    the server to imitate [default: coze]: studio speaks a self-hosted
                             Coze Studio's dialect (PAT only, no OAuth; /v3/chat streams
                             unless stream is false and ends with conversation.stream.done;
                             cancel marks a chat conversation.chat.cancelled and lets it run;
                             errors after a chat is accepted as SSE error events with HTTP
                             200; bad tokens answer code 700012006; endpoints Studio lacks
                             answer 401 \"missing session_key in cookie\"; the logid in
                             X-Log-ID; workflows and chatflows in Studio's shapes, see
                             WORKFLOWS and CHATFLOWS)
    --max-upload-bytes N     the upload limit [default: the real servers': 512 MiB of a file's
                             content on coze, a 200 MiB request body on studio]. Over it,
                             coze answers code 4000 and studio HTTP 413 \"Request Entity Too
                             Large\", without reading the rest of the body
    --tls-cert PATH          serve HTTPS with this certificate chain (PEM); needs --tls-key
    --tls-key PATH           the certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1)
    --tls-ca-out PATH        serve HTTPS with a throwaway CA made at start, whose certificate
                             (PEM) is written to PATH (atomically) for clients to trust; it
                             signs a certificate for 127.0.0.1, ::1 and localhost. The CA's
                             key never leaves the process
    -v, --verbose            log one line per request to stderr (tokens never logged)
    --quiet                  log nothing (the default)
    -h, --help               print this help
    -V, --version            print the version

FILES:
    POST /v1/files/upload    multipart/form-data, the file in the part named \"file\" (with a
                             filename). The body is read as it streams: the content is
                             hashed (SHA-256) and counted, never kept. coze answers data
                             {id,bytes,created_at,file_name}; studio {id,uri,url,bytes,
                             file_name,CreatedAt} with url BASE/_fake/files/ID. No file
                             part: code 4000 (coze), 104000006 (studio); several: the first
                             is taken (coze), 104000007 (studio). A malformed body (no
                             boundary, a part cut short, no closing boundary): code 4000
                             (coze) or HTTP 400 code 400 (studio), the msg saying which
    GET  /v1/files/retrieve?file_id=ID
                             coze only (a Studio serves no such path): the same data for a
                             file this account uploaded; an unknown id: code 4000, HTTP 200

ATTACHMENTS (object_string messages in /v3/chat additional_messages):
    content_type \"object_string\", content a JSON string holding an array of objects
    {\"type\":\"text\",\"text\":T} or {\"type\":\"file\"|\"image\"|\"audio\",\"file_id\":ID|\"file_url\":U}.
    Rules (coze: code 4000, HTTP 200, msg \"invalid parameter: additional_messages[I]: ...\"
    naming the rule; studio: its error event 103100001, or HTTP 400 when not streamed):
    the content is a non-empty JSON array; each type is text, file, image or audio; a text
    object has a non-empty text; a file_id is one this account uploaded (else \"file_id ID
    does not exist\"), or a file_url is given; at most one text object per message; a text
    object needs at least one file or image with it; a message of only files or images
    needs a plain text message just before or after it. The message is stored as sent.
    The answer is the usual echo of the text followed by
        \" [attachments: TYPE:NAME, TYPE:NAME]\"
    listing every file, image and audio object of the request in order, NAME being the
    uploaded file's file_name, or the file_url as sent.

WEB PAGES (for people, or curl):
    GET  /oauth/consent?authorize_key=K   consent page; form POST /oauth/consent with
                                          authorize_key=K and decision=approve|deny
    GET  /oauth/device?user_code=X        device page; form POST /oauth/device with
                                          user_code=X and decision=approve|deny

ADMIN ENDPOINTS (no auth, loopback only, not counted in stats or the log):
",
    );
    for (e, d) in ADMIN_ENDPOINTS {
        h.push_str(&format!("    {e:<20} {d}\n"));
    }
    h.push_str(
        "
FAULT ENDPOINT NAMES:
    token device_code users.me conversation.create conversation.retrieve conversation.list
    conversation.update conversation.delete conversation.clear message.list message.create
    message.retrieve chat (POST /v3/chat, stream or not) chat.retrieve chat.message.list
    chat.cancel chat.submit_tool_outputs files.upload files.retrieve workflow.run
    workflow.stream_run workflow.stream_resume workflow.resume workflow.history
    workflow.chat workspaces.list bots.list bots.get, and * (any API endpoint). On chat.submit_tool_outputs the fault types
    apply as on chat, requires_action excepted (the bot's rounds decide): those that
    replace the answer before the outputs are looked at (the chat still waits), the
    stream faults to the continued stream once the outputs are taken (chat_failed fails
    the chat after them; a non-streamed submit's chat fails when polled). On files.upload, a reset fault hangs up before reading the body; http,
    api_error and json_body answer once the whole body has been read (and counted in
    upload_bytes), the file not kept. On workflow streams stall, cut, error_event (an
    Error event {error_code,error_message}, studio adding debug_url), malformed and
    reset_mid_body apply between events; the run still ends on the server as planned
    (an injected Error: failed); on workflow.chat also chat_failed (the run fails)

FAULT TYPES:
",
    );
    for (t, d) in FAULT_TYPES {
        h.push_str(&format!("    {t:<16} {d}\n"));
    }
    h.push_str(
        "
BOT WIRE STYLES:
    POST /_fake/bot {\"style\":{\"crlf\":true,…}}: each true or false, but done; every style
    carries the same answer.
    space                `event: x` and `data: …` (one optional space after the colon)
    crlf                 CRLF line ends
    multiline_data       JSON data pretty-printed over several data: lines
    ascii                every non-ASCII character of the data written as a \\u escape (as
                         Python's json.dumps writes it); the text it stands for is the same
    comments             a `: keep-alive` comment before every event
    done                 \"quoted\" (data:\"[DONE]\"), \"bare\" (data:[DONE]) or \"debug_url\"
    split_writes         every event in two TCP writes, the first ending inside a UTF-8 character
    no_final_blank_line  the stream ends right after its last event's data: line, without the
                         blank line (each event's blank line is sent when the next event starts)
    no_final_newline     the same without even the data line's line end, as the official Python
                         SDK's recorded test streams end

WORKFLOWS (POST /v1/workflow/run, stream_run, stream_resume, /v1/workflows/resume; GET the
run history; chatflows below):
    A workflow id nobody configured runs with every default, so any id works (a Studio
    would refuse one that is not a number). POST /_fake/workflow {\"workflow_id\":ID,…}
    sets one, replacing an earlier spec; fields (all optional but workflow_id):
    published BOOL        [true] false: coze code 4200 before any stream; studio: sync
                          run 6031, stream_run its raw 720702011 (HTTP 200 JSON body)
    messages N            [1] Message events from the node titled Message before the end:
                          content \"I: 你好 🌏\\n\" (I from 0), node_seq_id \"I\", node_is_finish
                          true on the last
    delay_ms MS           [0] a pause before each Message (a sync run waits as long)
    pings N, ping_ms MS   [0, 0] before the end, N PING events (data {}), each after MS
                          (studio sends no PING: it only waits)
    output MODE           [json] what the end node returns, in the final Message's content
                          (node_title End), a sync run's data and the history's output:
                          json: the JSON text of {\"output\":PARAMETERS}; double:
                          {\"Output\":TEXT}, TEXT the JSON text of {\"content_type\":1,\"data\":
                          JSON,\"original_result\":null,\"type_for_model\":2}, JSON that of
                          {\"output\":PARAMETERS}; text: \"Echo: \" and the compact JSON of the
                          parameters (not JSON)
    required [NAMES]      [] parameters that must be present (not null), else before any
                          stream coze 4000 \"Missing required parameter: NAME\"; studio:
                          sync 4000, stream_run its raw 720702002, its own message
    error {code,message}  [none] the run fails after its messages (with a question: once an
                          answer fits): stream: an Error event
                          {error_code,error_message} (studio adds debug_url), no Done;
                          sync: {code,msg,debug_url}; async: history Fail with error_code
                          (a string) and error_message (studio error_msg)
    async BOOL            [true] false: is_async:true gets 6003 (coze only: a Studio has no
                          plans and runs it)
    running_polls N       [1] an async run's history says Running for N reads, then
                          Success or Fail
    lowercase_events BOOL [false] event names message/error/interrupt/done, as Studios
                          before v0.3.0
    question TEXT         [none] after the messages (and pings) the run stops at a question
                          node: a Message from node Question (coze: content TEXT; studio:
                          the node's JSON, as below), then Interrupt {\"interrupt_data\":
                          {\"data\":JSON,\"event_id\":\"E/N\",\"type\":T},\"node_title\":
                          \"Question\"} (studio: no node_title, debug_url first, keys
                          event_id,type,data), and no Done. JSON is Studio's question node's
                          {\"messages\":[…]}: the earlier questions and the answers that did
                          not fit, then {\"type\":\"question\",\"content_type\":\"option\",
                          \"content\":{\"options\":[{\"name\":O},…],\"question\":TEXT},\"id\":
                          \"154650_K\"} (content_type text: content is TEXT). N counts from
                          2769808280134765896, a new one per interrupt
    options [NAMES]       [] the question's options: an answer (spaces trimmed) that is none
                          of them asks again (a new event_id); when the third resume still
                          does not fit the run fails (coze Error 4000, studio 720701013).
                          No options: any answer fits
    interrupt_type T      [2] interrupt_data.type (5: an input node)
    A resume that fits ends the run: output {\"output\":PARAMETERS,\"answer\":RESUME_DATA}
    (text mode: \" (answer: A)\" appended), or the spec's error. POST
    /v1/workflow/stream_resume {workflow_id,event_id,resume_data,interrupt_type} streams
    from the question on, ids from 0 again, no messages; an event_id that is not the
    workflow's open interrupt (resumed, never given, another workflow's): code 4000
    \"…event not found or already resumed\" (coze: all four fields required, 4000). A sync
    run with a question: coze {code:0,msg,debug_url,interrupt_data:{data,
    required_parameters:{},event_id,type},execute_id,detail}, resumed with POST
    /v1/workflows/resume (same body; coze only), which answers as the run did (async: the
    execute_id again, the history moving on); studio 6039. Either resume takes any run's
    interrupt. The history of a run at a question: coze execute_status Running with
    interrupt_data; studio \"<UNSET>\" (its enum has no name for status 5)
    Shapes: execute_id 7404830425073352713 + n (a string on coze, a JSON number in
    studio's history); debug_url BASE/work_flow?execute_id=E&space_id=S&workflow_id=W.
    Streams: \"id: N\\nevent: NAME\\ndata: JSON\\n\\n\", ids from 0; the final Message has
    node_title End and (coze) cost, token, usage; Done carries {\"debug_url\"}. usage:
    input_count = characters of the parameters' compact JSON, output_count = characters
    of the output. A sync run on coze: {code:0,msg,data,debug_url,usage,detail}, no
    execute_id; on studio {code,msg:null,data,token,cost,debug_url,execute_id,BaseResp:
    null}. is_async: coze {debug_url,execute_id,msg,detail} (no code, as the docs show).
    History: coze GET /v1/workflows/W/run_histories/E, data [one run] with execute_status
    Running|Success|Fail, error_code \"\" on success, is_output_trimmed false; an unknown
    run or one of another workflow: 4200. studio GET /v1/workflow/get_run_history?
    workflow_id=W&execute_id=E: {\"data\":[…],\"BaseResp\":null}, no code, execute_id and
    connector_id (and bot_id, else null) JSON numbers, log_id, input, error_msg, nulls,
    no usage; an unknown execute_id: code 777777775, HTTP 200; the coze path: 401 as any
    path a Studio lacks. GET /_fake/workflow lists every run (mode sync|stream|async|chat;
    status Running|Success|Fail|Interrupted; resumes; answers).

CHATFLOWS (POST /v1/workflows/chat {workflow_id,additional_messages,parameters,app_id|bot_id,
conversation_id,ext}, the same specs):
    Chat events as coze's chatflow (coze-py's workflows_chat_stream_resp.txt): coze writes
    \"event: X\\ndata: D\\n\\n\" with no id: lines (coze-py's chat parser refuses them);
    studio numbers them \"id: N\" from 1. conversation.chat.created, .in_progress, the
    answer \"Echo: USER_INPUT\" (USER_INPUT the last message's content) in message deltas
    of 3 characters (delay_ms before each), its conversation.message.completed (coze:
    then a verbose generate_answer_finish), conversation.chat.completed with usage, then
    done {\"debug_url\"}. Each call is a run (mode chat, parameters + USER_INPUT). With a
    question the answer message is the question, then conversation.chat.requires_action
    and done. studio, and coze when ext.enable_card is \"true\" (UNVERIFIED: coze.cn's
    card is inferred from the SDKs, which ask for it so and read Studio's keys), say it
    as Studio's chatflow renders the node's first message (so a question asked again
    shows the first): with options a card, only as conversation.message.completed,
    content_type card, id the interrupt's N, content the JSON text of {\"card_type\":3,
    \"content_type\":50,\"response_type\":\"card\",\"template_id\":7383997384420262000,
    \"template_url\":\"\",\"data\":LAYOUT,\"x_properties\":{\"workflow_card_info\":INFO}},
    INFO the JSON text of {\"card_type\":\"QUESTION\",\"question_card_data\":{\"Title\":
    TEXT,\"Options\":[{\"name\":O},…]}}, LAYOUT that of Studio's card page (its list
    variable {\"description\":TEXT,\"list\":[{\"key\":O},…]}); without options TEXT
    itself, content_type text, as one delta and completed, both the same data. coze
    without ext.enable_card: \"TEXT (O1 / O2)\" in deltas of 3 (the options' part is the
    fake's own, UNVERIFIED). The run waits, bound to the conversation, and the next call
    in that conversation answers it with its message:
    \"Echo: ANSWER (answer to QUESTION)\" when it fits, the question again when not, a
    failure at the third misfit. A failure (the spec's error, a CONVERSATION_NAME other
    than Default: 720702204 \"conversation name does not exist\", a chat_failed fault):
    coze conversation.chat.failed {\"code\":\"C\",\"msg\"} then done; studio an error event
    {\"code\":\"C\",\"msg\",\"debug_url\"} and nothing after. Chat objects: coze's Chat
    (bot_id when given, last_error, usage); studio's ChatFlowDetail {id,conversation_id,
    status,execute_id,section_id}, the completed one adding bot_id and usage (its
    token_count twice the output count, as Studio adds). The user message and the answer
    are kept in the conversation. Refused before the stream: coze 4000 (no workflow_id; 0
    or over 50 messages; the last not the user's text; parameters not an object; both
    bot_id and app_id), 4200 (unpublished; an unknown conversation_id), 4000 (a missing
    required parameter); studio {code,msg} HTTP 200: 777777775 \"Workflow operation
    failure: …\" (no messages, the last not the user's, both ids, an unknown
    conversation, and no conversation_id without a CONVERSATION_NAME: a Studio finds or
    makes the conversation by that name), 720702011, 720702002.

TOOLS (local plugins, coze only; POST /_fake/bot {\"tools\":{\"rounds\":[ROUND,…],
\"usage_keys\":\"count\"|\"tokens\"}}):
    Every /v3/chat then calls tools before it answers. A ROUND is the calls made at once,
    each {\"name\":N,\"arguments\":{…}} (arguments sent as the object's JSON text; absent:
    {}), {\"name\":N,\"arguments\":\"TEXT\"} (TEXT sent as given, JSON or not), or
    {\"type\":\"reply_message\",\"question\":Q} (a question node; at most one a round). A
    setting that is not so: 400 naming the field. A Studio ignores it (it has no local
    plugins and never sends requires_action).
    A round is asked (on /v3/chat after created and in_progress): a
    conversation.message.completed of type function_call per function, content
    {\"name\":N,\"arguments\":ARGS,\"plugin_id\",\"plugin_name\",\"api_id\",\"api_name\":N,
    \"plugin_type\":6,\"thought\"} (ARGS the object, or the TEXT as a string), a
    reply_message's Q as an answer message (deltas, then completed), a verbose message
    {\"msg_type\":\"interrupt\",…}, then conversation.chat.requires_action (the Chat, status
    requires_action, required_action {\"type\":\"submit_tool_outputs\",\"submit_tool_outputs\":
    {\"tool_calls\":[{\"id\":\"call_<chat>_<R>_<K>\",\"type\":\"function\",\"function\":{\"name\":N,
    \"arguments\":\"<JSON text or TEXT>\"},\"require_info\":null},…]}}, R the round and K the
    call, both from 1; a reply_message call {\"id\":\"\",\"type\":\"reply_message\",
    \"function\":null,\"require_info\":null}, as the workflow_chat docs show) and done.
    Before that, the chat objects carry {\"type\":\"\",\"submit_tool_outputs\":{\"tool_calls\":
    []}}: only status says a chat waits. Not streamed, the chat polls to requires_action
    (retrieve shows required_action; chat.message.list the messages so far).
    POST /v3/chat/submit_tool_outputs?conversation_id=C&chat_id=H {\"tool_outputs\":
    [{\"tool_call_id\":ID,\"output\":TEXT},…],\"stream\":BOOL} answers the round (a
    reply_message too, by its id \"\": the fake's own, UNVERIFIED; the docs answer a
    question node with the next chat message, which here is an ordinary chat). stream true:
    the same chat goes on as an event stream, in_progress (no created), a tool_response
    message completed per output (content the output, in call order), then the next round
    asked as above, or after the last the answer
        工具结果 N1: OUTPUT1; N2: OUTPUT2
    (every output of every round, in call order; N is reply_message for a question's
    answer) in deltas of 3 characters (a long one in about 100), its completed, verbose
    and follow-ups, conversation.chat.completed (usage: input_count = characters of the
    prompt and the outputs + 12, output_count = of the answer; with usage_keys tokens
    named input_tokens and output_tokens, as the submit docs' example does), then done.
    stream false or absent: data is the Chat (status in_progress), which then polls on
    as a chat does. Every message stays in the chat's message list (function_call,
    verbose, tool_response, answer, …) and goes to the conversation when it completes.
    Refusals, HTTP 200 (the docs give only 5000; the other codes are the fake's own),
    checked in this order: 4000 \"invalid parameter: …\" for a body that is not an
    object, stream not a boolean, no tool_outputs, a tool_call_id or output that is not a
    string, or a missing conversation_id or chat_id; 4200 \"chat not found\"; 5000 for a
    chat created with auto_save_history false; 4000 \"…the chat is not waiting for tool
    outputs (status S)\" (running, answered already, completed, failed, canceled); 4000
    for a tool_call_id not of the round waited for, one given twice, or a call left
    without output. The requires_action fault asks its get_weather call the same way (no
    messages before). GET /_fake/tool_outputs lists what was accepted.

BOTS (POST /_fake/bots; {} restores the defaults, as /_fake/reset does):
    {\"workspaces\":[{id,name,role_type?,workspace_type?,icon_url?,enterprise_id?}],
     \"bots\":[{id,name,workspace_id?,description?,published?,prologue?,
               suggested_questions?,info?,draft?}],
     \"generate\":{workspace_id?,count,published?},
     \"denied\":[\"bots.list\"|\"workspaces.list\"|\"bots.get\"|\"users.me\"]}
    Each key present replaces its part; generate adds COUNT bots \"bot 1\"..\"bot N\" with
    ids 7500000000000000001 on (counting on across calls until a reset). A bot's
    workspace_id defaults to the first workspace, published to true; info holds BotInfo
    fields merged over the generated ones (objects key by key), draft more merged over
    those for the draft. Defaults: workspaces 7400000000000000001 \"个人空间\" (owner,
    personal) and 7400000000000000002 \"Team\" (member, team); no bots; nothing denied.
    GET /v1/workspaces?page_num&page_size: data {workspaces,total_count}.
    GET /v1/bots?workspace_id&publish_status&page_num&page_size: data {items:[{id,name,
    icon_url,folder_id,updated_at,description,is_published,published_at?,owner_user_id}],
    total}; publish_status published_online (default) or published_draft: published
    bots, unpublished_draft: the others, all; page_index is read when page_num is absent
    (coze-py sends it). Neither list has has_more. page_num from 1, page_size 1..50
    (default 20), else code 4000; no workspace_id: 4000; one not listed: 4101.
    GET /v1/bots/ID?is_published=true|false and GET /v1/bot/get_online_info?bot_id=ID:
    data BotInfo (bot_id, name, description, icon_url, create_time, update_time, version,
    owner_user_id, folder_id, bot_mode, prompt_info, onboarding_info{prologue,
    suggested_questions}, model_info, plugin_info_list, knowledge, workflow_info_list,
    shortcut_commands, variables, …); an unknown id, or a bot never published asked for
    its published version: code 4200 \"Requested resource bot_id=ID does not exist. …\".
    A denied endpoint answers code 4101 \"Your token does not have permission to access
    resource. …\" (as coze.cn does, naming no permission). Studio serves only the two
    single-bot paths (numeric ids), the published version whatever is_published says, as
    its OpenAPIBotInfo (ids as strings, times 0, plugins {plugin_id,api_id,api_name},
    workflows {workflow_id,workflow_name,desc}); get_online_info's body is that object
    with no envelope; an unknown or unpublished bot: code 100000003 \"unauthorized
    access : agent not exist\". The lists, /v1/workspaces and /v1/users/me answer its
    401 \"missing session_key in cookie\".

EXAMPLES:
    # start, remember the base URL, stop by closing stdin
    coproc FAKE { coze-fake --device-interval 1; }
    read -r line <&\"${FAKE[0]}\"; base=$(jq -r .base_url <<<\"$line\")

    # approve a PKCE login with curl
    consent=$(curl -s -o /dev/null -w '%{redirect_url}' \"$authorize_url\")
    key=${consent##*authorize_key=}
    curl -s -o /dev/null -w '%{redirect_url}' -d authorize_key=$key -d decision=approve $base/oauth/consent

    # the next 2 chats answer HTTP 429 with Retry-After: 1
    curl -s $base/_fake/fault -d '{\"endpoint\":\"chat\",\"fault\":{\"type\":\"http\",\"status\":429,\"retry_after\":1},\"count\":2}'

    # cut the next stream after 5 events; then a long, slow answer
    curl -s $base/_fake/fault -d '{\"endpoint\":\"chat\",\"fault\":{\"type\":\"cut\",\"after_events\":5}}'
    curl -s $base/_fake/bot -d '{\"deltas\":500,\"delta_delay_ms\":10,\"style\":{\"space\":true}}'

    # a service app: clients sign JWTs with key.pem (coze-token --jwt --key key.pem ...)
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out key.pem
    openssl pkey -in key.pem -pubout -out pub.pem
    coze-fake --jwt-public-key pub.pem --jwt-kid my-kid

    # a web app whose code exchange and refresh need the secret
    coze-fake --client-secret 42.app.coze=s3cret

    # a workflow that streams 100000 messages, and one that is not published
    curl -s $base/_fake/workflow -d '{\"workflow_id\":\"7400000000000000100\",\"messages\":100000}'
    curl -s $base/_fake/workflow -d '{\"workflow_id\":\"7400000000000000101\",\"published\":false}'

    # a bot that calls two tools at once, then one more, before it answers
    curl -s $base/_fake/bot -d '{\"tools\":{\"rounds\":[[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"北京\"}},{\"name\":\"get_time\"}],[{\"name\":\"get_news\"}]]}}'

    # counters, then force every client to refresh
    curl -s $base/_fake/stats; curl -s -X POST $base/_fake/expire

EXIT STATUS:
    0 stopped normally; 1 could not start (e.g. address in use); 2 usage error
",
    );
    h
}

/// What the command line asks for.
enum Parsed {
    Serve(Box<Options>),
    /// Help or version, to print and exit.
    Print(String),
}

fn parse() -> Result<Parsed, lexopt::Error> {
    use lexopt::prelude::*;
    let mut o = Options::default();
    let mut p = lexopt::Parser::from_env();
    let secs = |p: &mut lexopt::Parser| -> Result<u64, lexopt::Error> { p.value()?.parse() };
    let (mut tls_cert, mut tls_key, mut tls_ca_out) = (None, None, None);
    while let Some(arg) = p.next()? {
        match arg {
            Long("addr") => o.addr = p.value()?.string()?,
            Long("auto-approve") => o.auto_approve = true,
            Long("token-ttl") => o.token_ttl = secs(&mut p)?,
            Long("refresh-ttl") => o.refresh_ttl = secs(&mut p)?,
            Long("device-interval") => o.device_interval = secs(&mut p)?,
            Long("device-ttl") => o.device_ttl = secs(&mut p)?,
            Long("chat-latency-ms") => o.chat_latency_ms = secs(&mut p)?,
            Long("delta-delay-ms") => o.delta_delay_ms = secs(&mut p)?,
            Long("pat") => o.static_tokens.push(p.value()?.string()?),
            Long("jwt-public-key") => {
                let path = p.value()?;
                let pem = std::fs::read_to_string(&path).map_err(|e| {
                    lexopt::Error::Custom(
                        format!("--jwt-public-key {}: {e}", path.to_string_lossy()).into(),
                    )
                })?;
                o.jwt_public_key = Some(pem);
            }
            Long("jwt-kid") => o.jwt_kid = Some(p.value()?.string()?),
            Long("client-secret") => {
                let v = p.value()?.string()?;
                match v.split_once('=') {
                    Some((id, secret)) if !id.is_empty() && !secret.is_empty() => {
                        o.client_secrets.push((id.to_string(), secret.to_string()))
                    }
                    _ => {
                        return Err(lexopt::Error::Custom(
                            "--client-secret: expected CLIENT_ID=SECRET".into(),
                        ))
                    }
                }
            }
            Long("dialect") => {
                o.dialect = match p.value()?.string()?.as_str() {
                    "coze" => Dialect::Coze,
                    "studio" => Dialect::Studio,
                    other => {
                        return Err(lexopt::Error::Custom(
                            format!("--dialect: expected coze or studio, got {other:?}").into(),
                        ))
                    }
                }
            }
            Long("max-upload-bytes") => o.max_upload_bytes = Some(secs(&mut p)?),
            Long("tls-cert") => tls_cert = Some(PathBuf::from(p.value()?)),
            Long("tls-key") => tls_key = Some(PathBuf::from(p.value()?)),
            Long("tls-ca-out") => tls_ca_out = Some(PathBuf::from(p.value()?)),
            Short('v') | Long("verbose") => o.verbose = true,
            Long("quiet") => o.verbose = false,
            // print!/println! would panic on a closed stdout (`--help | head -1`).
            Short('h') | Long("help") => return Ok(Parsed::Print(help())),
            Short('V') | Long("version") => {
                return Ok(Parsed::Print(format!(
                    "coze-fake {}\n",
                    env!("CARGO_PKG_VERSION")
                )))
            }
            _ => return Err(arg.unexpected()),
        }
    }
    o.tls =
        match (tls_cert, tls_key, tls_ca_out) {
            (None, None, None) => None,
            (Some(cert), Some(key), None) => Some(TlsOptions::Files { cert, key }),
            (None, None, Some(ca_out)) => Some(TlsOptions::Generate {
                ca_out: Some(ca_out),
            }),
            (_, _, Some(_)) => return Err(lexopt::Error::Custom(
                "--tls-ca-out makes its own certificate: it does not go with --tls-cert/--tls-key"
                    .into(),
            )),
            _ => {
                return Err(lexopt::Error::Custom(
                    "--tls-cert and --tls-key go together".into(),
                ))
            }
        };
    Ok(Parsed::Serve(Box::new(o)))
}

/// Help or version on stdout: a closed stdout is a quiet success, another failure one
/// line and exit 1.
fn print_text(text: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("coze-fake: stdout: {e}");
            ExitCode::from(1)
        }
    }
}

fn main() -> ExitCode {
    let opts = match parse() {
        Ok(Parsed::Serve(o)) => *o,
        Ok(Parsed::Print(text)) => return print_text(&text),
        Err(e) => {
            eprintln!("coze-fake: {e} (try --help)");
            return ExitCode::from(2);
        }
    };
    // A non-loopback address is a usage error, not a start failure.
    match opts.addr.parse::<std::net::SocketAddr>() {
        Ok(a) if !a.ip().is_loopback() => {
            eprintln!(
                "coze-fake: refusing non-loopback address {a}: the fake is for local use only"
            );
            return ExitCode::from(2);
        }
        Err(_) if !opts.addr.starts_with("localhost:") => {
            eprintln!(
                "coze-fake: invalid --addr {:?}: want IP:PORT on loopback, e.g. 127.0.0.1:0",
                opts.addr
            );
            return ExitCode::from(2);
        }
        _ => {}
    }
    let ca_file = match &opts.tls {
        Some(TlsOptions::Generate { ca_out: Some(p) }) => Some(p.to_string_lossy().into_owned()),
        _ => None,
    };
    let dialect = opts.dialect;
    let fake = match Fake::start(opts) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("coze-fake: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let mut line =
        serde_json::json!({"type": "fake", "base_url": fake.base_url(), "dialect": dialect.name()});
    if let Some(path) = ca_file {
        line["ca_file"] = path.into();
    }
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
        return ExitCode::from(1);
    }
    drop(out);
    // Serve until stdin reaches EOF: the parent holding our stdin decides our lifetime.
    let mut sink = [0u8; 4096];
    let mut stdin = std::io::stdin().lock();
    while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
    drop(fake);
    ExitCode::SUCCESS
}
