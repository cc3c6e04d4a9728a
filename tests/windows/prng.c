/* bcryptprimitives.dll for Wine 8, which does not have it: Rust's std asks it for
 * ProcessPrng (its random numbers) when a program starts. Real Windows has the DLL; run.sh puts
 * this one beside tokenhost.exe only to run the tests under Wine. */
#include <windows.h>
#include <ntsecapi.h>

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!RtlGenRandom(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
