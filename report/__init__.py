"""The main job and its report: `python -m report.demo` (`make demo`)."""
