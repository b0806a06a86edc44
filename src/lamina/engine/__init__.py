"""The engine: lamina's operations as typed requests in, records or events out.

`images`, `containers`, `build` and `system` hold what the CLI verbs, the Python
API (lamina.client) and a future Engine API server all do: they take a `System`
and plain arguments, return records (docker-shaped dicts, store records, tuples)
or iterate events for long work, and raise lamina.errors.  They never print,
parse flags or choose exit codes; a caller that wants progress passes a sink.

Nothing is imported here: each front imports only the module its verb needs.
"""
