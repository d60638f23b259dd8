"""--log.format logfmt|json and --log.level, as Prometheus exporters have them."""

from __future__ import annotations

import argparse
import json
import logging

from joulecast.serving.logs import setup_logging


def test_logfmt_and_json(capsys):
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    try:
        setup_logging(argparse.Namespace(log_level="debug", log_format="json"))
        logging.getLogger("joulecast.test").debug('say "hi"\nthere')
        line = capsys.readouterr().err.strip()
        record = json.loads(line)
        assert record["level"] == "debug" and record["msg"] == 'say "hi"\nthere'
        setup_logging(argparse.Namespace(log_level="info", log_format="logfmt"))
        logging.getLogger("joulecast.test").debug("hidden at info")
        logging.getLogger("joulecast.test").warning('a "quoted" word')
        out = capsys.readouterr().err.strip()
        assert "hidden" not in out
        assert 'level=warning logger=joulecast.test msg="a \\"quoted\\" word"' in out
    finally:
        root.handlers[:], root.level = before
