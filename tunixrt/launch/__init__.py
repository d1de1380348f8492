"""`runtime.launcher: ray`: the model stages run as tasks on a Ray cluster, driven by the one
`dvc repro` on the head; inputs travel to the hosts, outputs come back to the workspace."""
