// Progressive enhancement for the policy pages; every page works without this file.
// - definition forms show only the fields of the chosen token type, and can add rule rows;
// - the simulator selects the input you typed in;
// - buttons of forms marked data-confirm ask first.
(function () {
  "use strict";

  function tokenTypeFields(form) {
    var select = form.querySelector('select[name="token_type"]');
    if (!select) return;
    function update() {
      form.querySelectorAll("[data-token-types]").forEach(function (wrapper) {
        // A field with an error stays, so the message about it can be read and acted on.
        var relevant = wrapper.classList.contains("has-error") ||
          wrapper.getAttribute("data-token-types").split(" ").indexOf(select.value) >= 0;
        wrapper.hidden = !relevant;
        // Hidden inputs are disabled, so a field of another token type is never submitted.
        wrapper.querySelectorAll("input, textarea, select").forEach(function (input) {
          input.disabled = !relevant;
        });
      });
    }
    select.addEventListener("change", update);
    update();
  }

  function ruleRows(form) {
    var body = form.querySelector("[data-rule-rows]");
    var count = form.querySelector("[data-rule-count]");
    if (!body || !count) return;
    var button = document.createElement("button");
    button.type = "button";
    button.className = "quiet";
    button.textContent = "Add a rule row";
    button.addEventListener("click", function () {
      var rows = body.querySelectorAll("[data-rule-row]");
      var last = rows[rows.length - 1];
      var next = rows.length;
      var row = last.cloneNode(true);
      row.classList.remove("has-error");
      row.querySelectorAll(".error").forEach(function (error) { error.remove(); });
      row.querySelectorAll("input, textarea, label").forEach(function (element) {
        ["id", "name", "for"].forEach(function (attribute) {
          var value = element.getAttribute(attribute);
          if (value) element.setAttribute(attribute, value.replace(/rule-\d+-/, "rule-" + next + "-"));
        });
        if (element.tagName === "LABEL") {
          element.textContent = element.textContent.replace(/\d+$/, String(next + 1));
        } else {
          element.value = "";
        }
      });
      body.appendChild(row);
      count.value = String(next + 1);
      row.querySelector("input").focus();
    });
    body.closest("table").after(button);
  }

  function simulatorSources(form) {
    function choose(name, value) {
      var radio = form.querySelector('input[name="' + name + '"][value="' + value + '"]');
      if (radio) radio.checked = true;
    }
    var links = [
      ["claims", "source", "claims"],
      ["token", "source", "token"],
      ["sample", "source", "sample"],
      ["draft", "policy_source", "draft"],
    ];
    links.forEach(function (link) {
      var input = form.querySelector('[name="' + link[0] + '"]');
      if (!input) return;
      input.addEventListener(input.tagName === "SELECT" ? "change" : "input", function () {
        choose(link[1], link[2]);
      });
    });
  }

  document.querySelectorAll("[data-definition-form]").forEach(function (form) {
    tokenTypeFields(form);
    ruleRows(form);
  });
  document.querySelectorAll("[data-simulate-form]").forEach(simulatorSources);
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
    });
  });
})();
