// Runs first on the console: keeps every Content-Security-Policy violation of the page (the
// browser test reads them), and says on the page when one happens.
window.lodgeCspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.lodgeCspViolations.push(`${event.violatedDirective}: ${event.blockedURI || "inline"}`);
});
