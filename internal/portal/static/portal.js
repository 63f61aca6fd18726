// Key Bridge STS portal: progressive enhancements only. Every page works
// without this script; it adds copy buttons next to secrets shown once.
(function () {
  "use strict";
  function copy(button) {
    var target = document.getElementById(button.getAttribute("data-copy"));
    if (!target) { return; }
    var text = target.value !== undefined ? target.value : target.textContent;
    var done = function () {
      var label = button.textContent, aria = button.getAttribute("aria-label");
      button.textContent = "Copied";
      button.setAttribute("aria-label", "Copied");
      button.classList.add("copied");
      setTimeout(function () {
        button.textContent = label;
        if (aria) { button.setAttribute("aria-label", aria); }
        button.classList.remove("copied");
      }, 2000);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { select(target); });
    } else {
      select(target);
      try { if (document.execCommand("copy")) { done(); } } catch (e) { /* selected: the user copies */ }
    }
  }
  function select(el) {
    if (el.select) { el.focus(); el.select(); }
  }
  document.addEventListener("DOMContentLoaded", function () {
    var buttons = document.querySelectorAll("button[data-copy]");
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].hidden = false;
      buttons[i].addEventListener("click", function (ev) { copy(ev.currentTarget); });
    }
    // A secret field selects its whole value on focus, for copying by keyboard.
    var secrets = document.querySelectorAll("input.secret, textarea.secret, input.mono");
    for (var j = 0; j < secrets.length; j++) {
      secrets[j].addEventListener("focus", function (ev) { ev.currentTarget.select(); });
    }
  });
})();
