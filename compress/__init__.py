"""hourglass-compress: make trained stacked-hourglass pose networks smaller and faster, with evidence."""
# Imported inside functions only (optional or slow): matplotlib, openvino, nncf, tensorrt; all else at module level
# (tests/test_import_graph.py checks it, and that the package has no import cycles).

__version__ = "0.1.0"
