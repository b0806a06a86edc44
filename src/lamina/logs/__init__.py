"""Container logs as docker's json-file driver keeps them: the writer the monitor
feeds a container's output through (`jsonfile.py`), the log options of `run`/`create`
(`options.py`) and the reader behind `logs` (`reader.py`)."""
