// Package instance is everything about running instances on one node:
// states and (in later work) runtimes, templates, ports, log buffers, the
// lifecycle state machine and the manager of all local instances. Today it
// holds the states of the contract, which the master reports on GET
// /api/node.
package instance
