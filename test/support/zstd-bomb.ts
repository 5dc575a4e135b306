// Decompression bombs for tests of the caps on what peers send (extension archives, LFC state).

/**
 * A decompression bomb: one zstd frame whose first block is `prefix` stored raw and whose other
 * blocks are RLE blocks of zero bytes (128 KiB each, 4 bytes each compressed), so that a few
 * hundred KiB expand to `zeros` bytes of zeros. Built by hand from the zstd frame format: the
 * magic number, a header with a 1 MiB window and no content size, then the blocks.
 */
export function zstdZeroBomb(prefix: Uint8Array, zeros: number): Uint8Array {
  const MAX_BLOCK = 128 << 10;
  const blocks = Math.ceil(zeros / MAX_BLOCK);
  const out = new Uint8Array(4 + 2 + 3 + prefix.length + blocks * 4);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, 0xfd2fb528, true);
  out[4] = 0x00; // frame header descriptor: no checksum, no dictionary, no content size
  out[5] = 10 << 3; // window descriptor: 2^(10+10) bytes
  let off = 6;
  const blockHeader = (last: boolean, type: number, size: number) => {
    const v = (last ? 1 : 0) | (type << 1) | (size << 3);
    out[off] = v & 0xff;
    out[off + 1] = (v >> 8) & 0xff;
    out[off + 2] = (v >> 16) & 0xff;
    off += 3;
  };
  blockHeader(blocks === 0, 0, prefix.length);
  out.set(prefix, off);
  off += prefix.length;
  for (let i = 0, left = zeros; i < blocks; i++) {
    const n = Math.min(MAX_BLOCK, left);
    left -= n;
    blockHeader(i === blocks - 1, 1, n);
    out[off++] = 0;
  }
  return out;
}
