"""The study note's custom vLLM server: ``POST /generate`` → ``{"results": [text, ...]}``.

Run it exactly as the note does:

    python servers/vllm_server.py [--model MODEL] [--host 127.0.0.1] [--port 8000] [--api-key KEY]
                                  [any vLLM engine option: --max-model-len 1024 --enforce-eager ...]

The server itself lives in ``llmkit/note_server.py`` (so notebooks and tests start the same code with
``llmkit.lifecycle.start_note_server``); ``--help`` lists every option, vLLM's engine flags included.
"""

import sys

from llmkit.note_server import main

if __name__ == "__main__":  # vLLM starts its engine in another process: the guard is required
    sys.exit(main())
