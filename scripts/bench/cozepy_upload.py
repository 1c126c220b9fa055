"""The peer in `make bench`'s upload case: the official Python SDK (cozepy) doing what
`coze-file upload PATH` does.

    cozepy_upload.py PATH    upload the file with `coze.files.upload`, write its record
                             as one JSON line (what `coze-file upload PATH` does)

Reads COZE_API_BASE and COZE_API_TOKEN. A minimal, idiomatic use of
`coze.files.upload(file=Path(...))`, not a tuned one: it is the cost a Python user pays.
"""
import json
import os
import sys
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")  # authlib's deprecation notice on import

from cozepy import Coze, TokenAuth  # noqa: E402

coze = Coze(auth=TokenAuth(os.environ["COZE_API_TOKEN"]), base_url=os.environ["COZE_API_BASE"])


def main():
    f = coze.files.upload(file=Path(sys.argv[1]))
    sys.stdout.write(json.dumps({"type": "file", "file_id": f.id, "file_name": f.file_name,
                                 "bytes": f.bytes}, ensure_ascii=False) + "\n")


main()
