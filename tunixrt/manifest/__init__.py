"""The Tunix SFT run manifest (data/export/run_manifest.yaml): `schema` (its typed sections),
`build` (the manifest stage), `load` (read it back and check the files it names).

Nothing is re-exported here, so a stage that only loads the manifest does not import (nor
depend on) the code that builds it. No JAX in this package.
"""
