"""Background jobs: runs of the maintenance commands split into batches of file ids, with
checkpoints (a batch done is never done again), progress, and a lock per job name in the
database so that two runs of one job never overlap. The queue itself is django-tasks'
(settings.TASKS); this app only knows about ids and dotted paths, never about files."""
