"""Beyond one machine: netcli under torchrun, FSDP2 sharding, DCP checkpoints (SPEC §6).

`group` joins the process group and keeps a job's ranks in step (one report
of an error, one exit code); `fsdp` builds a network sharded over the ranks and
saves and loads it as a torch.distributed.checkpoint folder. Nothing here is a
home-made engine: the sharding is FSDP2's `fully_shard`, the files are DCP's.
"""
