"""What a command shows on the terminal while it works, and nothing else.

Modules, one job each:
    quiet          silence the libraries' noise; our own progress and the warnings that ask something of the user
    log_lines      a run's progress as plain lines (a log file, CI) or beside a bar (a terminal)
    grid_progress  a grid's overall bar with an ETA, one line per finished run where there is no terminal
    interrupt      what Ctrl-C prints: what was saved and the command that continues
"""
