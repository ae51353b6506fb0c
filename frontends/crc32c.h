/* CRC32C (Castagnoli), as iSCSI, ext4 and many storage formats use it.
 *
 *     uint32_t c = prt_crc32c_update(0, buf, n);       // one shot
 *     c = prt_crc32c_update(c, more, m);                // or continued
 */
#ifndef PARROTS_CRC32C_H
#define PARROTS_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* The CRC of the bytes so far (start with 0) extended by n more bytes. */
uint32_t prt_crc32c_update(uint32_t crc, const void *data, size_t n);

#endif
