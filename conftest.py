"""Settings for every suite, tests/ and benchmarks/ alike."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

from lesionloc_runtime.openvino_cache import CACHE_ENV

# OpenVINO's compiled image encoders go to a folder of this session, never to the user's own
# cache (nor does one filled before change what a suite measures); a test or benchmark of the
# cache names its own folder
_SESSION_CACHE = tempfile.mkdtemp(prefix="lesionloc-openvino-cache-")
os.environ[CACHE_ENV] = _SESSION_CACHE
atexit.register(shutil.rmtree, _SESSION_CACHE, True)
