/* What the Wine tests (tests/e2e/windows.rs) need done the Windows way, from a Windows
 * process:
 *
 *   helper read FILE SECONDS HOLD_MS   opens FILE sharing only reading (as most readers do: no
 *                                      FILE_SHARE_DELETE, so nobody can replace it meanwhile),
 *                                      reads it whole, keeps it open HOLD_MS, closes it, again
 *                                      and again for SECONDS; prints each content that differs
 *                                      from the last one in hex ("data HEX"), each failed open
 *                                      ("fail CODE"), then "reads N"
 *   helper acl PATH...                 prints "user SID", then "PATH SDDL" with each path's
 *                                      owner and DACL as Windows reports them
 *   helper spawn FILE                  runs a command line as Task Scheduler does, with
 *                                      CreateProcessW: FILE holds the working directory on its
 *                                      first line and the whole command line on the second
 *                                      (UTF-8); exits with the program's exit code
 *   helper replace-open DIR            what replacing a file open for reading does: for a reader
 *                                      without and with FILE_SHARE_DELETE, prints
 *                                      "no-share-delete CODE" and "share-delete CODE", CODE being
 *                                      0 if MoveFileExW replaced it, else its error
 */
#include <windows.h>
#include <sddl.h>
#include <aclapi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int read_loop(const char *file, int seconds, int hold_ms)
{
    static char buf[1 << 16], last[1 << 16];
    DWORD last_len = (DWORD)-1;
    ULONGLONG end = GetTickCount64() + (ULONGLONG)seconds * 1000;
    long reads = 0;
    while (GetTickCount64() < end) {
        HANDLE h = CreateFileA(file, GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING,
                               FILE_ATTRIBUTE_NORMAL, NULL);
        if (h == INVALID_HANDLE_VALUE) {
            printf("fail %lu\n", GetLastError());
            Sleep(1);
            continue;
        }
        DWORD len = 0, got = 0;
        while (len < sizeof buf && ReadFile(h, buf + len, sizeof buf - len, &got, NULL) && got > 0)
            len += got;
        Sleep(hold_ms);
        CloseHandle(h);
        reads++;
        if (len != last_len || memcmp(buf, last, len) != 0) {
            printf("data ");
            for (DWORD i = 0; i < len; i++)
                printf("%02x", (unsigned char)buf[i]);
            printf("\n");
            memcpy(last, buf, len);
            last_len = len;
        }
        Sleep(5);
    }
    printf("reads %ld\n", reads);
    return 0;
}

static int acl(int n, char **paths)
{
    HANDLE token;
    char tu[512];
    DWORD len;
    LPSTR text;
    if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token) ||
        !GetTokenInformation(token, TokenUser, tu, sizeof tu, &len) ||
        !ConvertSidToStringSidA(((TOKEN_USER *)tu)->User.Sid, &text)) {
        printf("error %lu\n", GetLastError());
        return 1;
    }
    printf("user %s\n", text);
    LocalFree(text);
    for (int i = 0; i < n; i++) {
        PSECURITY_DESCRIPTOR sd;
        DWORD rc = GetNamedSecurityInfoA(paths[i], SE_FILE_OBJECT,
                                         OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION,
                                         NULL, NULL, NULL, NULL, &sd);
        if (rc != ERROR_SUCCESS) {
            printf("%s error %lu\n", paths[i], rc);
            continue;
        }
        if (ConvertSecurityDescriptorToStringSecurityDescriptorA(
                sd, SDDL_REVISION_1, OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION,
                &text, NULL)) {
            printf("%s %s\n", paths[i], text);
            LocalFree(text);
        } else {
            printf("%s error %lu\n", paths[i], GetLastError());
        }
        LocalFree(sd);
    }
    return 0;
}

static WCHAR *widen(const char *s)
{
    int n = MultiByteToWideChar(CP_UTF8, 0, s, -1, NULL, 0);
    WCHAR *w = malloc(n * sizeof(WCHAR));
    MultiByteToWideChar(CP_UTF8, 0, s, -1, w, n);
    return w;
}

/* The standard handles this program got, which its children get too. */
static HANDLE std_handles[3];

static int run(WCHAR *cmdline, const WCHAR *dir)
{
    STARTUPINFOW si = {sizeof si};
    PROCESS_INFORMATION pi;
    DWORD code = 1;
    si.dwFlags = STARTF_USESTDHANDLES;
    si.hStdInput = std_handles[0];
    si.hStdOutput = std_handles[1];
    si.hStdError = std_handles[2];
    if (!CreateProcessW(NULL, cmdline, NULL, NULL, TRUE, 0, NULL, dir, &si, &pi)) {
        fprintf(stderr, "CreateProcessW failed: %lu\n", GetLastError());
        return 125;
    }
    WaitForSingleObject(pi.hProcess, INFINITE);
    GetExitCodeProcess(pi.hProcess, &code);
    CloseHandle(pi.hThread);
    CloseHandle(pi.hProcess);
    return (int)code;
}

static int spawn(const char *file)
{
    static char text[1 << 16];
    FILE *f = fopen(file, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", file);
        return 125;
    }
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    char *nl = strchr(text, '\n');
    if (!nl) {
        fprintf(stderr, "%s: expected two lines\n", file);
        return 125;
    }
    *nl = 0;
    char *cmd = nl + 1;
    cmd[strcspn(cmd, "\r\n")] = 0;
    return run(widen(cmd), widen(text));
}

static int replace_open(const char *dir)
{
    char a[MAX_PATH], b[MAX_PATH];
    static const struct {
        const char *name;
        DWORD share;
    } readers[] = {{"no-share-delete", FILE_SHARE_READ},
                   {"share-delete", FILE_SHARE_READ | FILE_SHARE_DELETE}};
    snprintf(a, sizeof a, "%s\\old.txt", dir);
    snprintf(b, sizeof b, "%s\\new.txt", dir);
    for (int i = 0; i < 2; i++) {
        const char *files[2] = {a, b};
        for (int f = 0; f < 2; f++) {
            DWORD n;
            HANDLE h = CreateFileA(files[f], GENERIC_WRITE, 0, NULL, CREATE_ALWAYS, 0, NULL);
            if (h == INVALID_HANDLE_VALUE || !WriteFile(h, "x", 1, &n, NULL)) {
                printf("error %lu\n", GetLastError());
                return 1;
            }
            CloseHandle(h);
        }
        HANDLE r = CreateFileA(a, GENERIC_READ, readers[i].share, NULL, OPEN_EXISTING, 0, NULL);
        if (r == INVALID_HANDLE_VALUE) {
            printf("error %lu\n", GetLastError());
            return 1;
        }
        BOOL moved = MoveFileExA(b, a, MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH);
        printf("%s %lu\n", readers[i].name, moved ? 0 : GetLastError());
        CloseHandle(r);
    }
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    DWORD ids[3] = {STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, STD_ERROR_HANDLE};
    for (int i = 0; i < 3; i++) {
        std_handles[i] = GetStdHandle(ids[i]);
        SetHandleInformation(std_handles[i], HANDLE_FLAG_INHERIT, HANDLE_FLAG_INHERIT);
    }
    if (argc >= 5 && !strcmp(argv[1], "read"))
        return read_loop(argv[2], atoi(argv[3]), atoi(argv[4]));
    if (argc >= 3 && !strcmp(argv[1], "acl"))
        return acl(argc - 2, argv + 2);
    if (argc == 3 && !strcmp(argv[1], "spawn"))
        return spawn(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "replace-open"))
        return replace_open(argv[2]);
    fprintf(stderr, "usage: helper read FILE SECONDS HOLD_MS | acl PATH... | spawn FILE | replace-open DIR\n");
    return 2;
}
