"""Scale-out on existing engines: Ray actors and an asynchronous SAC learner (`sac`, `actor`), parallel
evaluation sweeps (`sweep`), and torchrun / DistributedDataParallel diffusion training (`ddp`).

Nothing below this package imports it, and importing it does not import Ray: only the modules that need
Ray import it, inside the functions that start a cluster.
"""
