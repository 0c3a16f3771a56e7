// The IIS server variables URL Rewrite rules may read, as Harrow knows them: the loader rejects
// a reference to any other name (it would expand to nothing), the router gives each its value.
#pragma once

#include <string_view>

namespace harrow::config {

// Variables with a value on every request (besides HTTP_* = any request header and, in
// outbound rules, RESPONSE_* = any response header and RESPONSE_STATUS).
inline constexpr std::string_view kServerVariableNames[] = {
    "APP_WARMING_UP",  // "0": Harrow has no application warm-up
    "AUTH_TYPE",       // "": Harrow authenticates nobody (IIS: anonymous requests)
    "AUTH_USER",      "LOGON_USER",         "REMOTE_USER",
    "CACHE_URL",  // scheme://host:port/path?query, scheme as the request came
    "CONTENT_LENGTH", "CONTENT_TYPE",       "HTTP_URL",        "HTTPS",         "LOCAL_ADDR",
    "PATH_INFO",      "QUERY_STRING",       "REMOTE_ADDR",
    "REMOTE_HOST",  // = REMOTE_ADDR: no reverse DNS, as IIS by default
    "REMOTE_PORT",    "REQUEST_METHOD",     "REQUEST_URI",     "SCRIPT_NAME",   "SERVER_NAME",
    "SERVER_PORT",    "SERVER_PORT_SECURE", "SERVER_PROTOCOL", "UNENCODED_URL", "URL",
};

// Variables that name files: IIS maps the URL to a physical path, Harrow maps none.
inline constexpr std::string_view kFileSystemVariableNames[] = {
    "APPL_PHYSICAL_PATH", "DOCUMENT_ROOT",   "PATH_TRANSLATED", "PHYSICAL_PATH",
    "REQUEST_FILENAME",   "SCRIPT_FILENAME", "APPL_MD_PATH",    "INSTANCE_META_PATH",
};

// URL Rewrite's string functions: {ToLower:…} and so on.
inline constexpr std::string_view kRewriteFunctionNames[] = {"ToLower", "UrlEncode", "UrlDecode",
                                                             "HtmlEncode"};

}  // namespace harrow::config
