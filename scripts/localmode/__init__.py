"""Local mode: the whole cluster on one machine, every process a program of one supervisord.

config     where the cluster lives and which ports it uses (one frozen dataclass)
programs   each program's command, environment, stop signal and timeouts
supervisor supervisord's configuration file and its XML-RPC API
launch     the launcher each program starts through: clears an earlier run's leftovers, then execs
procs      which processes belong to the cluster (their working directory), listeners on its ports
consul     the Consul agent's program and start-up (dev mode, or secured with ACLs)
gateway    nginx's configuration, its program, and the renderer that keeps its upstream live
status     what `make status` prints
waiting    polling with a deadline

scripts/localcluster.py puts these together into the operations `make up|down|scale|status` run.
"""
