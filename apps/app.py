"""The alignlab Gradio app as a script: ``python apps/app.py [--port 7860] [--output-dir runs]``.

Thin on purpose: everything lives in :mod:`alignlab.ui.gradio`; ``alignlab app`` does the same.
"""

import sys

from alignlab.cli import main

if __name__ == "__main__":
    sys.exit(main(["app", *sys.argv[1:]]))
