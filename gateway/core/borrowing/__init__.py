"""Pure core of the borrowing side (we are the requesting agency): statuses, transition table,
state machine, deadlines. No I/O, no DB, no clock."""
