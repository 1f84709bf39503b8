/* replay.c — runs every file named on the command line (or in the directories named)
 * through a fuzz target's LLVMFuzzerTestOneInput, without libFuzzer, so `make test`
 * replays the committed corpus with gcc (and under ASan in make asan-test).
 * Prints "NAME: N passed, 0 failed"; a failing input aborts the process. */
#define _DEFAULT_SOURCE
#include "fuzz.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int run_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    uint8_t *buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        free(buf);
        return 0;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, (size_t)n);
    free(buf);
    return 1;
}

int main(int argc, char **argv) {
    const char *name = argc > 1 ? argv[1] : "replay";
    int passed = 0;
    for (int i = 2; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            printf("%s: 0 passed, 1 failed (%s missing)\n", name, argv[i]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            passed += run_file(argv[i]);
            continue;
        }
        DIR *d = opendir(argv[i]);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
            passed += run_file(path);
        }
        if (d) closedir(d);
    }
    printf("%s: %d passed, 0 failed\n", name, passed);
    return 0;
}
