/*
 * TEST SCAFFOLDING FOR WINE 8 ONLY; never ship it beside a real hookgate.exe.
 *
 * Rust's std (since 1.78) imports ProcessPrng from bcryptprimitives.dll for its random numbers.
 * Wine 8 (Debian 12's wine64) has no such export, so any Rust .exe stops at start with
 * c0000135. tests/windows/run.sh builds this file as bcryptprimitives.dll and puts it beside
 * hookgate.exe, where Wine loads it before its own: ProcessPrng is answered by
 * SystemFunction036 (RtlGenRandom, advapi32), which Wine 8 has. Windows 10 and later have the
 * real ProcessPrng and need none of this.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x7fffffff ? 0x7fffffff : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
