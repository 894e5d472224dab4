"""Local mode: the whole cluster on one machine, every process a program of one supervisord.

config         where the cluster lives and which ports it uses (one frozen dataclass)
mode           normal or secured mode of a run directory, and each role's Consul token
programs       a program's command, environment, stop signal and timeouts as a supervisord section
consul         the Consul agent's program (dev mode, or a secured persistent server)
gateway        nginx's configuration and program, and the renderer that keeps its upstream live
gatewaychecks  whether the gateway serves, and routes to every passing worker
workers        worker programs and their two ports each
monitoring     Prometheus, mtail and the service-discovery file as programs
starts         adding each program to the supervisor and waiting until it serves
supervisor     supervisord's configuration file, its daemon, and its programs
control        supervisord's XML-RPC API over its unix socket
launch         the launcher each program starts through: clears an earlier run's leftovers, then execs
listeners      taking over a leftover's listening socket (nginx restarts refuse no connection)
procs          which processes belong to the cluster (their working directory), listeners on its ports
teardown       after supervisord stopped: stop what it no longer watched, check nothing is left
status         what `make status` prints
logmerge       `make logs`: every process's JSON log lines merged in time order
waiting        polling with a deadline

scripts/localcluster.py puts these together into the operations `make up|down|scale|status` run.
"""
