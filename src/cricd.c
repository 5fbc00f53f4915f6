/* cricd entry point: placeholder until the foundation lands. */
#include "config.h"
#include <stdio.h>

int main(void)
{
    puts("cricd " PACKAGE_VERSION);
    return 0;
}
