// A minimal bot behind lull in Node.js (20+), no npm dependencies: it checks lull's
// signature and echoes each batch's text.
//
//   LULL_HANDLER_SECRET=change-me node examples/node_bot/bot.mjs
//   LULL_HANDLER=http://127.0.0.1:8000/lull LULL_HANDLER_SECRET=change-me make run
//
// BOT_PORT=0 picks a free port; the first line printed names the one in use.
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";

const secret = process.env.LULL_HANDLER_SECRET ?? "";
if (!secret) {
  console.error("LULL_HANDLER_SECRET is required: the secret lull signs with");
  process.exit(2);
}
const host = process.env.BOT_HOST ?? "127.0.0.1";
const port = Number(process.env.BOT_PORT ?? "8000");
// lull sends at most its batch (a few KiB, LULL_MAX_BYTES of messages plus history).
const MAX_BODY_BYTES = 4 * 1024 * 1024;

function signatureOk(header, body) {
  const expected = Buffer.from(
    "sha256=" + createHmac("sha256", secret).update(body).digest("hex"),
  );
  const given = Buffer.from(header ?? "");
  // timingSafeEqual throws on different lengths; the length of a hex digest is no secret.
  return given.length === expected.length && timingSafeEqual(given, expected);
}

function answer(res, status, body) {
  if (body === undefined) {
    res.writeHead(status).end();
    return;
  }
  res.writeHead(status, { "Content-Type": "application/json" }).end(JSON.stringify(body));
}

const server = createServer((req, res) => {
  if (req.method !== "POST" || req.url !== "/lull") return answer(res, 404, { error: "not found" });
  const chunks = [];
  let size = 0;
  req.on("data", (chunk) => {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) req.destroy();
    else chunks.push(chunk);
  });
  req.on("end", () => {
    // The raw bytes, exactly as signed: never re-serialise parsed JSON to check them.
    const body = Buffer.concat(chunks);
    if (!signatureOk(req.headers["x-lull-signature-256"], body)) {
      return answer(res, 401, { error: "bad signature" });
    }
    let batch;
    try {
      batch = JSON.parse(body.toString("utf8"));
    } catch {
      return answer(res, 400, { error: "not JSON" });
    }
    // Only attachments (or a reaction): nothing to say; 204 is "no replies".
    if (!batch.text.trim()) return answer(res, 204);
    answer(res, 200, { replies: [{ text: batch.text }] });
  });
});
// Bounds what one slow client can hold; lull's own call is bounded by LULL_HANDLER_TIMEOUT_MS.
server.requestTimeout = 30_000;
server.listen(port, host, () => {
  console.log(`bot: http://${host}:${server.address().port}/lull (echo)`);
});
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
