/* What Wine 8.0 lacks for a Rust program: bcryptprimitives.dll, whose
 * ProcessPrng the standard library imports for its random numbers (Windows
 * 10 and later have it). This one gives advapi32's RtlGenRandom
 * (SystemFunction036) under that name. The Wine harness
 * (client/tests/wine/mod.rs) builds it with MinGW and puts it in its
 * prefix's system32; coffre.exe does not ship it: real Windows has it. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG n = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!SystemFunction036(data, n)) return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
