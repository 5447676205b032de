// Runs pieces of the n8n workflow outside n8n, as n8n would: the Code node's JavaScript
// (an async function body with $input, $env, require and this.helpers) and a `={{ ... }}`
// expression (with $json, $env and $('Node name') of earlier nodes). Reads {"kind", "code",
// ...} on stdin, prints the result as JSON.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const job = JSON.parse(Buffer.concat(chunks).toString("utf8"));

if (job.kind === "code") {
  const AsyncFunction = Object.getPrototypeOf(async function () {}).constructor;
  const run = new AsyncFunction("$input", "$env", "require", job.code);
  const raw = Buffer.from(job.body_base64, "base64");
  const helpers = {
    async getBinaryDataBuffer(index, property) {
      if (index !== 0 || property !== "data") throw new Error(`no binary ${property} on ${index}`);
      return raw;
    },
  };
  const input = { first: () => ({ json: { headers: job.headers, body: {} } }) };
  console.log(JSON.stringify(await run.call({ helpers }, input, job.env, require)));
} else {
  const inner = job.code.replace(/^=\{\{/, "").replace(/\}\}$/, "");
  // $('Node name').item.json: an earlier node's output, given in job.nodes.
  const earlier = (name) => ({ item: { json: (job.nodes || {})[name] } });
  const evaluate = new Function("$json", "$", "$env", `return (${inner});`);
  console.log(JSON.stringify(evaluate(job.json, earlier, job.env || {})));
}
