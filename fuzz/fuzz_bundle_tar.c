/* slate: fuzz the verifying bundle reader on the tar stream inside the
 * zstd frame. Mutating a compressed bundle mostly breaks the frame; here
 * the input is the decompressed tar and the harness compresses it, so a
 * seed signed with the fuzz key keeps a valid signature while its members,
 * headers, padding and end blocks are mutated. */
#include <stdlib.h>

#include <archive.h>
#include <archive_entry.h>

#include "bundle_common.h"

/* data as one zstd frame (libarchive's raw writer), to free. */
static void *compress(const uint8_t *data, size_t size, size_t *out_len)
{
	struct archive *a = archive_write_new();
	struct archive_entry *ae;
	size_t cap = size + size / 8 + 4096;
	void *out = malloc(cap);

	fuzz_check(a != NULL && out != NULL, "allocate the compressor");
	*out_len = 0;
	if (archive_write_set_format_raw(a) != ARCHIVE_OK || archive_write_add_filter_zstd(a) != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
	    archive_write_open_memory(a, out, cap, out_len) != ARCHIVE_OK)
		goto fail;
	ae = archive_entry_new();
	archive_entry_set_pathname(ae, "tar");
	archive_entry_set_filetype(ae, AE_IFREG);
	archive_entry_set_size(ae, (la_int64_t)size);
	if (archive_write_header(a, ae) != ARCHIVE_OK ||
	    (size > 0 && archive_write_data(a, data, size) != (la_ssize_t)size)) {
		archive_entry_free(ae);
		goto fail;
	}
	archive_entry_free(ae);
	if (archive_write_close(a) != ARCHIVE_OK)
		goto fail;
	archive_write_free(a);
	return out;
fail:
	archive_write_free(a);
	free(out);
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t len = 0;
	void *z = compress(data, size, &len);

	if (z != NULL) {
		fuzz_verify_bundle(z, len);
		free(z);
	}
	return 0;
}
