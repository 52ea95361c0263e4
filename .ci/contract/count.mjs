// Reads a linter's JSON report on stdin and prints "<errors> <warnings>".
//   node count.mjs redocly|spectral
let text = "";
process.stdin.on("data", (d) => (text += d));
process.stdin.on("end", () => {
  const report = JSON.parse(text);
  if (process.argv[2] === "redocly") {
    console.log(`${report.totals.errors} ${report.totals.warnings}`);
  } else {
    // Spectral severities: 0 error, 1 warn, 2 info, 3 hint.
    const errors = report.filter((r) => r.severity === 0).length;
    const warnings = report.filter((r) => r.severity === 1).length;
    console.log(`${errors} ${warnings}`);
  }
});
