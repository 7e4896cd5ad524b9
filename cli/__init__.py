"""orderguard: the command that runs the system, embedded or one service role at a time."""
