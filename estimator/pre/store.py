"""Persisted PRE models: joblib files plus a metadata.json, loaded only from a model dir.

``metadata.json`` records the feature lists, library versions, the SHA-256 of the training
data and of every model file, and the cross-validation scores. A model file is loaded only
if it is named in the metadata, sits directly in the directory, and matches its hash (a
joblib file is a pickle: nothing else is ever unpickled).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn

from joulecast.estimator.pre.model import JOB_COLUMNS, METHODS, MODEL_FORMAT, PAPER_FEATURES

SEED_DIR = Path(__file__).resolve().parent / "models" / "seed"


class ModelError(RuntimeError):
    """A model directory cannot be used; the message says why and what to do."""


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save(model_dir: Path, models: dict[str, Any], meta: dict[str, Any]) -> Path:
    model_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, model in models.items():
        path = model_dir / f"{name}.joblib"
        fd, tmp = tempfile.mkstemp(dir=model_dir, suffix=".tmp")
        os.close(fd)
        joblib.dump(model, tmp, compress=3)
        os.replace(tmp, path)
        files[name] = {"file": path.name, "sha256": _sha(path)}
    metadata = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "format": MODEL_FORMAT,
        "methods": files,
        "features": {"job": JOB_COLUMNS, "pre_paper": PAPER_FEATURES},
        "versions": {
            "scikit-learn": sklearn.__version__,
            "numpy": np.__version__,
            "joblib": joblib.__version__,
        },
        **meta,
    }
    (model_dir / "metadata.json").write_text(json.dumps(metadata, indent=2, default=str))
    return model_dir


def read_metadata(model_dir: Path) -> dict[str, Any]:
    """A model directory's metadata alone (no model is unpickled); {} when unreadable."""
    try:
        meta = json.loads((model_dir / "metadata.json").read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def load(model_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    meta_path = model_dir / "metadata.json"
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise ModelError(
            f"{model_dir}: no metadata.json (train one with: joulecast pre train --data CSV --out {model_dir})"
        ) from None
    except (OSError, ValueError, RecursionError) as err:
        raise ModelError(f"{meta_path}: not valid JSON ({err})") from None
    if not isinstance(meta, dict):
        raise ModelError(f"{meta_path}: not a JSON object")
    if not isinstance(meta.get("methods", {}), dict) or not all(
        isinstance(e, dict) for e in meta.get("methods", {}).values()
    ):
        raise ModelError(f"{meta_path}: 'methods' must map method names to objects")
    if not isinstance(meta.get("versions", {}), dict):
        raise ModelError(f"{meta_path}: 'versions' must be an object")
    fmt = meta.get("format", 1)
    if fmt != MODEL_FORMAT:
        raise ModelError(
            f"{meta_path}: model format {fmt}, this version reads format {MODEL_FORMAT}: "
            f"retrain with: joulecast pre train --data CSV --out {model_dir}"
        )
    models = {}
    for name, entry in meta.get("methods", {}).items():
        if name not in METHODS:
            raise ModelError(f"{meta_path}: unknown method {name!r}")
        path = model_dir / str(entry.get("file", ""))
        if path.parent.resolve() != model_dir.resolve() or not path.is_file():
            raise ModelError(
                f"{meta_path}: model file {entry.get('file')!r} must be a file inside {model_dir}"
            )
        if _sha(path) != entry.get("sha256"):
            raise ModelError(f"{path}: SHA-256 differs from metadata.json; refusing to load it")
        try:
            models[name] = joblib.load(path)
        except Exception as err:  # version skew of scikit-learn pickles, truncated file
            trained = meta.get("versions", {}).get("scikit-learn")
            raise ModelError(
                f"{path}: cannot be loaded ({err.__class__.__name__}: {err}); it was trained with scikit-learn "
                f"{trained}, this is {sklearn.__version__}: retrain with joulecast pre train"
            ) from None
    if not models:
        raise ModelError(f"{meta_path}: no methods")
    return models, meta
