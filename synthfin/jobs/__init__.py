"""Jobs run from YAML or the command line: pipeline settings, the staged pipeline, and sharded
sampling of millions of paths."""
