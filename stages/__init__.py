"""One thin entry script per DVC stage (dvc.yaml): each calls tunixrt.stages.main."""
