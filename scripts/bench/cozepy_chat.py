"""The peer in `make bench`: the official Python SDK (cozepy) doing what coze-chat does.

    cozepy_chat.py one PROMPT    stream one answer, writing each delta to stdout and
                                 flushing it (what `coze-chat -o text PROMPT` does)
    cozepy_chat.py batch         one prompt per stdin line, one process, one client, the
                                 first chat's conversation kept; one JSON answer per line
                                 (what `coze-chat -o answers < FILE` does)

Reads COZE_API_BASE, COZE_API_TOKEN and COZE_BOT_ID. A minimal, idiomatic use of
`coze.chat.stream`, not a tuned one: it is the cost a Python user pays.
"""
import json
import os
import sys
import warnings

warnings.filterwarnings("ignore")  # authlib's deprecation notice on import

from cozepy import ChatEventType, Coze, Message, TokenAuth  # noqa: E402

coze = Coze(auth=TokenAuth(os.environ["COZE_API_TOKEN"]), base_url=os.environ["COZE_API_BASE"])
BOT = os.environ["COZE_BOT_ID"]
USER = "bench-user"


def ask(prompt, conversation_id, on_delta):
    conv = conversation_id
    for event in coze.chat.stream(
        bot_id=BOT,
        user_id=USER,
        additional_messages=[Message.build_user_question_text(prompt)],
        conversation_id=conversation_id,
    ):
        if event.event == ChatEventType.CONVERSATION_MESSAGE_DELTA:
            on_delta(event.message.content)
        elif event.event == ChatEventType.CONVERSATION_CHAT_CREATED:
            conv = event.chat.conversation_id
    return conv


def main():
    out = sys.stdout
    if sys.argv[1] == "one":
        def write(text):
            out.write(text)
            out.flush()

        ask(sys.argv[2], None, write)
        out.write("\n")
    else:
        conv = None
        for line in sys.stdin:
            prompt = line.rstrip("\n")
            if not prompt:
                continue
            parts = []
            conv = ask(prompt, conv, parts.append)
            out.write(json.dumps({"type": "answer", "prompt": prompt, "content": "".join(parts)},
                                 ensure_ascii=False) + "\n")
            out.flush()


main()
