"""The peer in `make bench`'s workflow case: the official Python SDK (cozepy)
streaming one workflow run, as `coze-workflow run -o text` does.

    cozepy_workflow.py WORKFLOW_ID    stream one run with parameters {"input": "bench"},
                                      writing each Message's content to stdout, flushed

Reads COZE_API_BASE and COZE_API_TOKEN. A minimal, idiomatic use of
`coze.workflows.runs.stream`, not a tuned one: it is the cost a Python user pays.
"""
import os
import sys
import warnings

warnings.filterwarnings("ignore")  # authlib's deprecation notice on import

from cozepy import Coze, TokenAuth, WorkflowEventType  # noqa: E402

coze = Coze(auth=TokenAuth(os.environ["COZE_API_TOKEN"]), base_url=os.environ["COZE_API_BASE"])


def main():
    out = sys.stdout
    for event in coze.workflows.runs.stream(workflow_id=sys.argv[1], parameters={"input": "bench"}):
        if event.event == WorkflowEventType.MESSAGE:
            out.write(event.message.content)
            out.flush()
        elif event.event == WorkflowEventType.ERROR:
            raise SystemExit(f"workflow error: {event.error}")
    out.write("\n")


main()
