// The line editor of mpcli's shell: Debian's libedit (libedit-dev), through its readline
// interface. Only what the shell uses.
#include <stdio.h>
#include <editline/readline.h>

// libedit's settings are C globals: set and read here, so that Swift sees functions.
static inline void mpcli_edit_setup(const char *name, rl_completion_func_t *complete) {
    rl_readline_name = name;
    rl_attempted_completion_function = complete;
}

static inline const char *mpcli_edit_line(void) { return rl_line_buffer; }
