// SCRAM-SHA-256 (RFC 5802/7677) for the storage client, without channel binding: the connection
// has no TLS.
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto";
import { enc } from "./messages.ts";

export function scramClient(password: string) {
  const nonce = randomBytes(18).toString("base64");
  const gs2 = "n,,";
  const firstBare = `n=,r=${nonce}`;
  let serverSignature: Buffer | null = null;
  return {
    first: enc.encode(gs2 + firstBare),
    next(serverFirst: string): Uint8Array {
      const attrs = new Map(
        serverFirst.split(",").map((kv) => [kv.slice(0, 1), kv.slice(2)] as [string, string]),
      );
      const r = attrs.get("r");
      const salt = attrs.get("s");
      const iter = Number(attrs.get("i"));
      if (!r?.startsWith(nonce) || !salt || !Number.isInteger(iter) || iter < 1) {
        throw new Error("invalid SCRAM server-first-message");
      }
      const salted = pbkdf2Sync(password, Buffer.from(salt, "base64"), iter, 32, "sha256");
      const clientKey = createHmac("sha256", salted).update("Client Key").digest();
      const storedKey = createHash("sha256").update(clientKey).digest();
      const finalNoProof = `c=${Buffer.from(gs2).toString("base64")},r=${r}`;
      const authMessage = `${firstBare},${serverFirst},${finalNoProof}`;
      const clientSig = createHmac("sha256", storedKey).update(authMessage).digest();
      const proof = Buffer.alloc(clientKey.length);
      for (let i = 0; i < proof.length; i++) {
        proof[i] = (clientKey[i] as number) ^ (clientSig[i] as number);
      }
      const serverKey = createHmac("sha256", salted).update("Server Key").digest();
      serverSignature = createHmac("sha256", serverKey).update(authMessage).digest();
      return enc.encode(`${finalNoProof},p=${proof.toString("base64")}`);
    },
    verify(serverFinal: string): void {
      if (serverFinal.startsWith("e=")) {
        throw new Error(`SCRAM authentication failed: ${serverFinal.slice(2)}`);
      }
      const v = serverFinal.startsWith("v=") ? Buffer.from(serverFinal.slice(2), "base64") : null;
      if (!v || !serverSignature || v.length !== serverSignature.length) {
        throw new Error("invalid SCRAM server-final-message");
      }
      if (!timingSafeEqual(v, serverSignature)) {
        throw new Error("SCRAM server signature mismatch");
      }
    },
  };
}
