"""Pure core of the borrowing side (we are the requesting agency): statuses, transition table,
state machine, deadlines. No I/O, no DB, no clock. Its public names are exported from
`gateway.core`."""
