// tranche-agent uses OpenSSL, never GnuTLS; but Debian's libcurl links librtmp and
// libldap, and both link GnuTLS, so libgnutls (with p11-kit, nettle, hogweed, gmp,
// tasn1) is loaded into the agent, and GnuTLS initializes itself in a library
// constructor: crypto back-ends, ASN.1 trees, system priorities, about 0.8 MB of
// resident pages for nothing (docs/benchmarks.md, "tranche-agent idle footprint").
//
// This is GnuTLS's documented opt-out (GNUTLS_SKIP_GLOBAL_INIT in <gnutls/gnutls.h>):
// the program defines _gnutls_global_init_skip() returning 1, and GnuTLS's
// constructor and destructor do nothing. A library that does use GnuTLS calls
// gnutls_global_init() itself (librtmp and libldap do), and the agent allows
// libcurl only http and https (CURLOPT_PROTOCOLS_STR) anyway. agent/CMakeLists.txt
// exports the symbol from the executable so that libgnutls's call (through its PLT)
// finds it.
extern "C" int _gnutls_global_init_skip();  // NOLINT(bugprone-reserved-identifier,readability-identifier-naming)
extern "C" int _gnutls_global_init_skip() {  // NOLINT(bugprone-reserved-identifier,readability-identifier-naming)
  return 1;
}
