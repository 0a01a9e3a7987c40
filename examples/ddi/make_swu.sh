#!/usr/bin/env bash
# Builds a CMS-signed SWUpdate image (.swu) for the DDI tests and `tranche demo
# --swupdate N`, with openssl and cpio only:
#
#   make_swu.sh OUT_DIR VERSION PAYLOAD_TEXT DEST_PATH [good|fail|refuse] [PAD_BYTES]
#
# OUT_DIR/signer.pem and signer.key are made once and reused (the clients are
# started with `-k OUT_DIR/signer.pem`); OUT_DIR/update-VERSION.swu installs a
# file at DEST_PATH holding PAYLOAD_TEXT. With `fail`, the image also carries a
# postinstall script that exits 1, after the file is written: SWUpdate reports
# closed/failure for it. With `refuse`, the script is a preinstall one: it exits 1
# before anything is written (the image's own check refuses the device). With
# PAD_BYTES, the image also installs PAD_BYTES random bytes at DEST_PATH.pad: a
# bigger image, for a download that takes a while.
set -euo pipefail

out=$1
version=$2
text=$3
dest=$4
mode=${5:-good}
pad=${6:-0}

mkdir -p "$out"
if [ ! -f "$out/signer.pem" ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$out/signer.key" -out "$out/signer.pem" \
    -days 3650 -subj "/CN=tranche test signer" 2>/dev/null
fi

work=$(mktemp -d "$out/swu.XXXXXX")
trap 'rm -rf "$work"' EXIT
printf '%s\n' "$text" > "$work/payload"
sha=$(sha256sum "$work/payload" | cut -d' ' -f1)
files=(sw-description sw-description.sig)
scripts=""
pad_entry=""
if [ "$pad" -gt 0 ]; then
  head -c "$pad" /dev/urandom > "$work/pad"
  pad_entry=",
    {
      filename = \"pad\";
      path = \"$dest.pad\";
      sha256 = \"$(sha256sum "$work/pad" | cut -d' ' -f1)\";
      properties = { create-destination = \"true\"; };
    }"
  files+=(pad)  # before the payload: the payload file appears only once the pad is in
fi
files+=(payload)
case "$mode" in
  good) ;;
  fail | refuse)
    # SWUpdate runs a preinstall script before it writes any file, a postinstall
    # script after.
    when=$([ "$mode" = fail ] && echo postinstall || echo preinstall)
    printf '#!/bin/sh\necho "%s: refusing version %s" >&2\nexit 1\n' "$when" "$version" > "$work/$when.sh"
    ssha=$(sha256sum "$work/$when.sh" | cut -d' ' -f1)
    scripts="  scripts: ( { filename = \"$when.sh\"; type = \"$when\"; sha256 = \"$ssha\"; } );"
    files+=("$when.sh")
    ;;
  *) echo "make_swu.sh: mode must be good, fail or refuse, not '$mode'" >&2; exit 2 ;;
esac
cat > "$work/sw-description" <<DESC
software =
{
  version = "$version";
  description = "tranche DDI test image $version";
  hardware-compatibility: [ "1.0" ];
  files: (
    {
      filename = "payload";
      path = "$dest";
      sha256 = "$sha";
      properties = { create-destination = "true"; };
    }$pad_entry
  );
$scripts
}
DESC
openssl cms -sign -in "$work/sw-description" -out "$work/sw-description.sig" -signer "$out/signer.pem" \
  -inkey "$out/signer.key" -outform DER -nosmimecap -binary
(cd "$work" && printf '%s\n' "${files[@]}" | cpio -o -H crc --quiet) > "$out/update-$version.swu"
echo "$out/update-$version.swu"
