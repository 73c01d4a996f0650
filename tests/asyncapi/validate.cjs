// Validate AsyncAPI documents with the official parser (@asyncapi/parser): reads one JSON
// document from stdin, prints the parser's diagnostics as JSON, exits 1 when any is an error.
const path = require("path");
const modules = process.env.ASYNCAPI_NODE_MODULES || path.join(__dirname, "..", "..", ".cache", "asyncapi", "node_modules");
const { Parser } = require(path.join(modules, "@asyncapi", "parser"));

let input = "";
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", async () => {
  const parser = new Parser();
  const { document, diagnostics } = await parser.parse(input);
  const report = diagnostics.map((d) => ({ severity: d.severity, code: d.code, message: d.message, path: d.path }));
  console.log(JSON.stringify({ parsed: Boolean(document), version: document ? document.version() : null, diagnostics: report }));
  process.exit(document && !report.some((d) => d.severity === 0) ? 0 : 1);
});
