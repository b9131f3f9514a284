/* hold.exe: holds a file open the way Outlook holds its .pst or an
 * accounting program its database, for client/tests/windows_open_files.rs.
 *
 *   hold.exe FILE STOP MODE [TEXT]
 *
 * MODE "deny": opens FILE with share mode 0 (nobody else may open it:
 * ERROR_SHARING_VIOLATION, 32); MODE "lock": opens it shared for reading
 * and writing and locks all of it with LockFileEx (a reader gets
 * ERROR_LOCK_VIOLATION, 33). With TEXT, writes TEXT as the file's new
 * contents through the held handle (the program changing its file while it
 * holds it). Then prints "held" and keeps the file until the file STOP
 * exists, and exits 0. Exits 2 with a message if it cannot.
 *
 * Built by the test with x86_64-w64-mingw32-gcc. */
#include <windows.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: hold.exe FILE STOP deny|lock [TEXT]\n");
        return 2;
    }
    int lock = strcmp(argv[3], "lock") == 0;
    DWORD share = lock ? FILE_SHARE_READ | FILE_SHARE_WRITE : 0;
    HANDLE h = CreateFileA(argv[1], GENERIC_READ | GENERIC_WRITE, share, NULL, OPEN_EXISTING,
                           FILE_ATTRIBUTE_NORMAL, NULL);
    if (h == INVALID_HANDLE_VALUE) {
        fprintf(stderr, "hold.exe: cannot open %s: error %lu\n", argv[1], GetLastError());
        return 2;
    }
    if (argc > 4) {
        DWORD n = (DWORD)strlen(argv[4]), written = 0;
        if (SetFilePointer(h, 0, NULL, FILE_BEGIN) == INVALID_SET_FILE_POINTER ||
            !WriteFile(h, argv[4], n, &written, NULL) || written != n || !SetEndOfFile(h)) {
            fprintf(stderr, "hold.exe: cannot write %s: error %lu\n", argv[1], GetLastError());
            return 2;
        }
        FlushFileBuffers(h);
    }
    if (lock) {
        OVERLAPPED at = {0};
        if (!LockFileEx(h, LOCKFILE_EXCLUSIVE_LOCK | LOCKFILE_FAIL_IMMEDIATELY, 0, MAXDWORD,
                        MAXDWORD, &at)) {
            fprintf(stderr, "hold.exe: cannot lock %s: error %lu\n", argv[1], GetLastError());
            return 2;
        }
    }
    printf("held\n");
    fflush(stdout);
    while (GetFileAttributesA(argv[2]) == INVALID_FILE_ATTRIBUTES) {
        Sleep(50);
    }
    CloseHandle(h);
    return 0;
}
