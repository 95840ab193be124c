// Package console holds Universe's one set of operator commands (the
// registry and its grammar) and the terminal front end. The same registry
// serves the master's terminal, POST /api/commands/execute, the console
// WebSocket and the offline `universe key ...` CLI, so a command behaves the
// same from everywhere. Commands reach the rest of the system through small
// interfaces defined here (Keys), which the master satisfies.
package console
