// The version editor's structured form, beside the JSON/YAML text. The text stays what is sent
// and checked: the form is built from it when the form is opened, and every edit in the form
// writes the whole config back into it as JSON (then announces the change, so it is checked like
// typing). Fields the form does not show are kept as they are; opening the form and going back
// without an edit leaves the text untouched. Each issue of a fresh check is shown beside the
// field whose path is the longest prefix of the issue's path (data-path on the field).
(function () {
  "use strict";

  var THINKING_LABELS = {
    adaptive: "Adaptive: the model decides how much to think",
    enabled: "Enabled: a fixed thinking budget",
    disabled: "Disabled: no thinking",
    between_tools: "Between tools: short notes between tool calls, no thinking"
  };
  var EFFORT_LABELS = { low: "Low", medium: "Medium", high: "High", xhigh: "Extra high", max: "Max" };
  var LIFECYCLE_GROUPS = [["active", "Active"], ["deprecated", "Deprecated"], ["retired", "Retired: requests fail"]];
  // Top-level fields the form edits; any other field is listed as kept unchanged.
  var FORM_FIELDS = ["model", "max_tokens", "output_config", "thinking", "system", "cache_control",
    "tools", "mcp_servers", "subagents", "max_iterations"];
  var MAX_BREAKPOINTS = 4;
  var MODE_KEY = "flagstaff.editor-mode";

  var nextId = 0;

  // el("div", {className: "x", text: "…", attrs: {…}, on: {input: fn}}, [children])
  function el(tag, props, children) {
    var node = document.createElement(tag);
    props = props || {};
    if (props.className) { node.className = props.className; }
    if (props.text !== undefined) { node.textContent = props.text; }
    Object.keys(props.attrs || {}).forEach(function (name) {
      var value = props.attrs[name];
      if (value === true) { node.setAttribute(name, ""); } else if (value !== false && value !== null && value !== undefined) { node.setAttribute(name, String(value)); }
    });
    Object.keys(props.on || {}).forEach(function (name) { node.addEventListener(name, props.on[name]); });
    (children || []).forEach(function (child) {
      if (child) { node.appendChild(typeof child === "string" ? document.createTextNode(child) : child); }
    });
    return node;
  }

  function join(prefix, name) {
    return prefix ? prefix + "." + name : name;
  }

  function number(value) {
    return typeof value === "number" ? value.toLocaleString("en-US") : "—";
  }

  // Whether `path` is `field` or lies under it (tools[1] covers tools[1].name, not tools[10]).
  function covers(field, path) {
    return path === field || path.indexOf(field + ".") === 0 || path.indexOf(field + "[") === 0;
  }

  function Form(editor, container, references) {
    this.editor = editor;
    this.container = container;
    this.panel = document.getElementById(editor.getAttribute("data-checked-by"));
    this.raw = document.getElementById("raw-editor");
    this.form = editor.form;
    this.surface = container.getAttribute("data-surface");
    this.models = {};
    this.modelList = references.models;
    this.secrets = references.secrets;
    this.drafts = new Map();  // object → {field: text that is not valid JSON yet}
    this.issues = [];
    this.content = null;
    var form = this;
    references.models.forEach(function (model) {
      [model.id].concat(model.aliases).forEach(function (id) { form.models[id] = model; });
    });
  }

  // Switching between the form and the text

  Form.prototype.start = function () {
    var form = this;
    // The form's fields carry the model's limits (min, max, pattern) as hints for the author,
    // but the server checks the config: a field out of range, perhaps hidden in the text view,
    // must not silently block "Check" or "Save".
    this.form.noValidate = true;
    this.tabs = el("div", { className: "editor-modes", attrs: { role: "tablist", "aria-label": "Editor" } }, [
      this.tab("form", "Form"),
      this.tab("text", "Text (JSON or YAML)")
    ]);
    this.notice = el("p", { className: "editor-notice", attrs: { role: "status", hidden: true } });
    this.mainArea = this.container.parentNode;
    this.mainArea.insertBefore(this.tabs, this.container);
    this.mainArea.insertBefore(this.notice, this.container);
    this.secretList = el("datalist", { attrs: { id: "secret-names" } }, this.secrets.map(function (secret) {
      return el("option", { attrs: { value: secret.name, label: "used by " + secret.flags.join(", ") } });
    }));
    this.mainArea.appendChild(this.secretList);
    this.editor.addEventListener("editor:checked", function (event) {
      form.issues = event.detail.issues;
      form.place();
    });
    this.editor.addEventListener("editor:show-issue", function (event) {
      if (form.mode === "form") {
        event.preventDefault();
        form.reveal(event.detail.path);
      }
    });
    var wanted = window.localStorage.getItem(MODE_KEY) || "form";
    this.show(wanted === "form" && this.open() ? "form" : "text");
  };

  Form.prototype.tab = function (mode, label) {
    var form = this;
    return el("button", {
      className: "editor-mode",
      text: label,
      attrs: { type: "button", role: "tab", "data-mode": mode, "aria-controls": mode === "form" ? "config-form" : "raw-editor" },
      on: { click: function () { form.switchTo(mode); } }
    });
  };

  Form.prototype.switchTo = function (mode) {
    if (mode === this.mode) {
      return;
    }
    if (mode === "text" && this.drafts.size) {
      this.say("Fix the field marked “Not valid JSON” first: the text does not have that edit yet.");
      this.reveal(null);
      return;
    }
    if (mode === "form" && !this.open()) {
      this.say("The text cannot be read as a config yet: fix what the check on the right points to, then open the form.");
      return;
    }
    window.localStorage.setItem(MODE_KEY, mode);
    this.show(mode);
  };

  Form.prototype.show = function (mode) {
    this.mode = mode;
    this.say("");
    this.container.hidden = mode !== "form";
    this.raw.hidden = mode === "form";
    Array.prototype.forEach.call(this.tabs.children, function (tab) {
      tab.setAttribute("aria-selected", String(tab.getAttribute("data-mode") === mode));
    });
    if (mode === "text") {
      this.editor.dispatchEvent(new CustomEvent("editor:shown"));
    }
  };

  // Read the text into the form; false when it is not a config object.
  Form.prototype.open = function () {
    var content = null;
    this.fromYaml = false;
    try {
      content = JSON.parse(this.editor.value);
    } catch (error) {
      content = this.checkedContent();
      this.fromYaml = content !== null;
    }
    if (content === null || typeof content !== "object" || Array.isArray(content)) {
      return false;
    }
    this.content = content;
    this.say("");
    this.render();
    return true;
  };

  // YAML is read by the server: the last check carries what it read, if it checked this text.
  Form.prototype.checkedContent = function () {
    var data = this.panel.querySelector("#checked-content");
    if (!data || this.panel.classList.contains("check-stale")) {
      return null;
    }
    return JSON.parse(data.textContent);
  };

  Form.prototype.say = function (message) {
    this.notice.textContent = message;
    this.notice.hidden = !message;
  };

  // Writing back

  Form.prototype.write = function () {
    var text = JSON.stringify(this.content, null, 2);
    this.fromYaml = false;
    if (text === this.editor.value) {
      this.editor.dispatchEvent(new CustomEvent("editor:synced"));
      return;
    }
    this.editor.value = text;
    this.editor.dispatchEvent(new Event("input", { bubbles: true }));
  };

  // A JSON field's text that does not parse stays a draft: the text (and its check) wait for it.
  Form.prototype.setDraft = function (owner, field, text) {
    var drafts = this.drafts.get(owner) || {};
    if (text === null) {
      delete drafts[field];
    } else {
      drafts[field] = text;
    }
    if (Object.keys(drafts).length) { this.drafts.set(owner, drafts); } else { this.drafts.delete(owner); }
    var waiting = this.drafts.size > 0;
    this.editor.toggleAttribute("data-unsynced", waiting);
    this.panel.setAttribute("data-checking-text", waiting ? "Not checked: a field of the form is not valid JSON yet." : "Checking…");
    if (waiting) {
      this.editor.dispatchEvent(new CustomEvent("editor:unsynced"));
    }
    Array.prototype.forEach.call(this.form.querySelectorAll("button[value=save]"), function (button) {
      button.disabled = waiting;
    });
  };

  Form.prototype.draft = function (owner, field) {
    var drafts = this.drafts.get(owner);
    return drafts && field in drafts ? drafts[field] : null;
  };

  // Rebuild the form (after a change of shape: a block, tool or model added or removed).
  Form.prototype.render = function () {
    var focused = document.activeElement && this.container.contains(document.activeElement)
      ? document.activeElement.getAttribute("data-key") : null;
    var sections = [el("div", { className: "form-issues", attrs: { id: "form-issues", hidden: true } })];
    if (this.fromYaml) {
      sections.push(el("p", { className: "alert message-info", text: "The text is YAML. A change made here rewrites it as JSON (YAML comments are not kept)." }));
    }
    this.container.replaceChildren.apply(this.container, sections.concat(this.configSections(this.content, "", true)));
    if (focused) {
      var again = this.container.querySelector("[data-key=\"" + focused.replace(/"/g, "\\\"") + "\"]");
      if (again) { again.focus(); }
    }
    this.place();
  };

  Form.prototype.changed = function (reshape) {
    this.write();
    if (reshape) { this.render(); }
  };

  // Controls

  Form.prototype.field = function (label, path, control, hint) {
    var id = "cf-" + (nextId += 1);
    control.id = id;
    control.setAttribute("data-key", path + ":" + control.tagName);
    return el("div", { className: "form-field", attrs: { "data-path": path } }, [
      el("label", { text: label, attrs: { for: id } }),
      control,
      hint ? el("p", { className: "hint", text: hint }) : null
    ]);
  };

  Form.prototype.input = function (owner, key, attrs, read) {
    var form = this;
    var value = owner[key];
    return el("input", {
      attrs: Object.assign({ value: value === undefined ? "" : value, autocomplete: "off" }, attrs),
      on: {
        input: function (event) {
          var text = event.target.value;
          if (text === "") { delete owner[key]; } else { owner[key] = read ? read(text) : text; }
          form.changed(false);
        }
      }
    });
  };

  Form.prototype.textarea = function (owner, key, attrs) {
    var form = this;
    var value = typeof owner[key] === "string" ? owner[key] : "";
    var rows = Math.max(attrs.rows || 3, Math.min(value.split("\n").length + 1, 24));
    var area = el("textarea", {
      attrs: Object.assign({}, attrs, { rows: rows }),
      on: {
        input: function (event) {
          if (event.target.value === "" && attrs["data-optional"]) { delete owner[key]; } else { owner[key] = event.target.value; }
          form.changed(false);
        }
      }
    });
    area.value = value;
    return area;
  };

  // A JSON value edited as text: written back only when it parses; until then its problem is
  // shown under it (the area is in its field by the time anyone types).
  Form.prototype.jsonArea = function (owner, key, rows) {
    var form = this;
    var draft = this.draft(owner, key);
    var area = el("textarea", { className: "code", attrs: { rows: rows, spellcheck: "false", autocomplete: "off" } });
    area.value = draft !== null ? draft : JSON.stringify(owner[key] === undefined ? {} : owner[key], null, 2);
    var problem = el("p", { className: "field-issue field-issue-error json-problem" });
    function check(text) {
      try {
        owner[key] = JSON.parse(text);
      } catch (error) {
        problem.textContent = "Not valid JSON: " + error.message;
        area.parentNode.insertBefore(problem, area.nextSibling);
        form.setDraft(owner, key, text);
        return;
      }
      problem.remove();
      form.setDraft(owner, key, null);
      form.changed(false);
    }
    area.addEventListener("input", function () { check(area.value); });
    if (draft !== null) { window.setTimeout(function () { check(draft); }, 0); }
    return area;
  };

  // A list item's heading follows its name as it is typed.
  function titled(heading, prefix, input) {
    input.addEventListener("input", function () {
      heading.textContent = prefix + (input.value ? ": " + input.value : "");
    });
    return input;
  }

  Form.prototype.button = function (label, action, className) {
    return el("button", { className: "btn btn-small " + (className || ""), text: label, attrs: { type: "button" }, on: { click: action } });
  };

  Form.prototype.section = function (title, path, children, note) {
    return el("fieldset", { className: "form-section", attrs: { "data-path": path || null } },
      [el("legend", { text: title }), note ? el("p", { className: "hint", text: note }) : null].concat(children));
  };

  // One config: the top level, or a subagent's

  Form.prototype.configSections = function (config, prefix, topLevel) {
    var model = this.models[config.model];
    var sections = [
      this.modelSection(config, prefix, model),
      this.outputSection(config, prefix, model),
      this.systemSection(config, prefix),
      this.toolsSection(config, prefix),
      this.serversSection(config, prefix),
      this.subagentsSection(config, prefix)
    ];
    if (!topLevel || this.surface === "agent" || "max_iterations" in config) {
      sections.push(this.section("Agent loop", null, [this.field("Max iterations", join(prefix, "max_iterations"),
        this.input(config, "max_iterations", { type: "number", min: 1, max: 1000, step: 1, inputmode: "numeric" }, Number),
        "The most model calls per task (1 to 1,000).")]));
    }
    var others = Object.keys(config).filter(function (name) { return FORM_FIELDS.indexOf(name) < 0; });
    if (config.output_config && typeof config.output_config === "object") {
      Object.keys(config.output_config).forEach(function (name) {
        if (name !== "effort") { others.push("output_config." + name); }
      });
    }
    if (others.length) {
      sections.push(el("p", { className: "hint form-others" }, [
        "Also in this config, kept as they are: ",
        el("code", { text: others.join(", ") }),
        ". Edit them in the text view."
      ]));
    }
    return sections;
  };

  Form.prototype.modelSection = function (config, prefix, model) {
    var form = this;
    var select = el("select", { on: { change: function (event) { config.model = event.target.value; form.changed(true); } } });
    var known = false;
    LIFECYCLE_GROUPS.forEach(function (group) {
      var options = form.modelList.filter(function (entry) { return entry.lifecycle === group[0]; }).map(function (entry) {
        var chosen = model === entry;
        known = known || chosen;
        return el("option", {
          text: entry.display_name + " (" + entry.id + ")",
          attrs: { value: chosen ? config.model : entry.id, selected: chosen, disabled: entry.lifecycle === "retired" && !chosen }
        });
      });
      if (options.length) { select.appendChild(el("optgroup", { attrs: { label: group[1] } }, options)); }
    });
    if (!known) {
      var label = config.model ? config.model + " (not in the catalog)" : "Choose a model";
      select.insertBefore(el("option", { text: label, attrs: { value: config.model || "", selected: true, disabled: !config.model } }), select.firstChild);
    }
    return this.section("Model", null, [this.field("Model", join(prefix, "model"), select), this.modelFacts(model)]);
  };

  Form.prototype.modelFacts = function (model) {
    if (!model) {
      return el("p", { className: "hint", text: "Pick a model from the catalog to see its lifecycle, prices and limits." });
    }
    var lifecycle = el("span", { className: "badge " + { active: "badge-green", deprecated: "badge-amber", retired: "badge-red" }[model.lifecycle], text: model.lifecycle });
    var dates = model.retires_at ? " Retires on " + model.retires_at + "." : "";
    var replacement = model.replacement ? " Replacement: " + model.replacement + "." : "";
    var prices = model.prices;
    var priceText = prices.input
      ? "Input " + prices.input + ", output " + prices.output
        + (prices.cache_write_5m ? ", cache write " + prices.cache_write_5m + " (5 min) / " + prices.cache_write_1h + " (1 h)" : "")
        + (prices.cache_read ? ", cache read " + prices.cache_read : "") + " per million tokens."
      : "No price in the catalog.";
    return el("dl", { className: "model-facts" }, [
      el("dt", { text: "Lifecycle" }), el("dd", {}, [lifecycle, dates + replacement]),
      el("dt", { text: "Limits" }), el("dd", { text: "Output up to " + number(model.max_tokens) + " tokens; context window " + number(model.context_window) + " tokens." }),
      el("dt", { text: "Prices" }), el("dd", { text: priceText }),
      el("dt", { text: "Supports" }), el("dd", { text: "Effort: " + (model.effort_levels.join(", ") || "none") + ". Thinking: " + (model.thinking_types.join(", ") || "none") + "." })
    ]);
  };

  Form.prototype.outputSection = function (config, prefix, model) {
    var name = model ? model.display_name : "the model";
    var limit = model && model.max_tokens;
    var fields = [this.field("Max tokens", join(prefix, "max_tokens"),
      this.input(config, "max_tokens", { type: "number", min: 1, max: limit || null, step: 1, inputmode: "numeric", required: true }, Number),
      limit ? "At most " + number(limit) + " for " + name + ", thinking included." : "Thinking tokens count towards it.")];
    fields.push(this.effortField(config, prefix, model, name));
    fields = fields.concat(this.thinkingFields(config, prefix, model, name));
    return this.section("Output", null, fields);
  };

  // A select of the values the model supports; a value it does not support stays, marked, so
  // that nothing changes behind the author's back (the check says why it is wrong).
  Form.prototype.choice = function (current, allowed, labels, emptyLabel, name) {
    var options = [el("option", { text: emptyLabel, attrs: { value: "", selected: current === undefined } })];
    allowed.forEach(function (value) {
      options.push(el("option", { text: labels[value] || value, attrs: { value: value, selected: value === current } }));
    });
    if (current !== undefined && allowed.indexOf(current) < 0) {
      options.push(el("option", { text: current + ": not supported by " + name, attrs: { value: current, selected: true } }));
    }
    return el("select", {}, options);
  };

  // What the model supports for one setting; off when it supports none and none is set.
  Form.prototype.capability = function (current, allowed, labels, name) {
    var select = this.choice(current, allowed, labels, "Model default", name);
    select.disabled = !allowed.length && current === undefined;
    return select;
  };

  function objectAt(config, key) {
    return config[key] && typeof config[key] === "object" ? config[key] : {};
  }

  Form.prototype.effortField = function (config, prefix, model, name) {
    var form = this;
    var levels = model ? model.effort_levels : [];
    var select = this.capability(objectAt(config, "output_config").effort, levels, EFFORT_LABELS, name);
    select.addEventListener("change", function () {
      var next = Object.assign({}, config.output_config);
      if (select.value) { next.effort = select.value; } else { delete next.effort; }
      if (Object.keys(next).length) { config.output_config = next; } else { delete config.output_config; }
      form.changed(false);
    });
    var needing = model ? model.efforts_requiring_thinking : [];
    var hint = !levels.length ? name + " takes no effort setting."
      : needing.length ? needing.join(" and ") + " need thinking on." : "How much the model thinks and writes.";
    return this.field("Effort", join(prefix, "output_config.effort"), select, hint);
  };

  Form.prototype.thinkingFields = function (config, prefix, model, name) {
    var form = this;
    var thinking = objectAt(config, "thinking");
    var types = model ? model.thinking_types : [];
    var select = this.capability(thinking.type, types, THINKING_LABELS, name);
    select.addEventListener("change", function () {
      if (!select.value) {
        delete config.thinking;
      } else {
        var next = { type: select.value };
        if (select.value === "enabled") { next.budget_tokens = thinking.budget_tokens || 1024; }
        if (select.value === "adaptive" && thinking.display) { next.display = thinking.display; }
        config.thinking = next;
      }
      form.changed(true);
    });
    var path = join(prefix, "thinking");
    var fields = [this.field("Thinking", join(path, "type"), select, types.length ? null : name + " takes no thinking setting.")];
    if (thinking.type === "enabled") {
      var most = typeof config.max_tokens === "number" ? config.max_tokens - 1 : null;
      fields.push(this.field("Thinking budget (tokens)", join(path, "budget_tokens"),
        this.input(thinking, "budget_tokens", { type: "number", min: 1024, max: most, step: 1, inputmode: "numeric" }, Number),
        "At least 1,024 and less than max tokens."));
    }
    if (thinking.type === "adaptive") {
      var display = this.choice(thinking.display, ["summarized", "omitted"], { summarized: "Summarized", omitted: "Omitted" }, "Default", name);
      display.addEventListener("change", function () {
        if (display.value) { thinking.display = display.value; } else { delete thinking.display; }
        form.changed(false);
      });
      fields.push(this.field("Thinking shown as", join(path, "display"), display));
    }
    return fields;
  };

  // The system prompt: text blocks, each with its own cache breakpoint

  Form.prototype.systemSection = function (config, prefix) {
    var form = this;
    var path = join(prefix, "system");
    var blocks = [];
    if (typeof config.system === "string") {
      blocks.push(this.systemBlock(config, prefix, null));
    } else if (Array.isArray(config.system)) {
      config.system.forEach(function (block, index) { blocks.push(form.systemBlock(config, prefix, index)); });
    }
    var used = countBreakpoints(config);
    var automatic = el("input", {
      attrs: { type: "checkbox", checked: "cache_control" in config },
      on: {
        change: function (event) {
          if (event.target.checked) { config.cache_control = { type: "ephemeral" }; } else { delete config.cache_control; }
          form.changed(true);
        }
      }
    });
    automatic.setAttribute("data-key", join(prefix, "cache_control") + ":auto");
    var children = [el("div", { className: "blocks" }, blocks),
      el("div", { className: "button-row" }, [this.button("Add a text block", function () {
        var texts = Array.isArray(config.system) ? config.system
          : typeof config.system === "string" ? [{ type: "text", text: config.system }] : [];
        texts.push({ type: "text", text: "" });
        config.system = texts;
        form.changed(true);
        var areas = form.container.querySelectorAll("[data-key=\"" + path + "[" + (texts.length - 1) + "]:TEXTAREA\"]");
        if (areas.length) { areas[0].focus(); }
      })]),
      el("div", { className: "form-field form-check", attrs: { "data-path": join(prefix, "cache_control") } }, [
        el("label", {}, [automatic, " Automatic caching: a breakpoint on the last cacheable block (top-level cache_control)"])
      ]),
      el("p", { className: "hint", text: "Cache breakpoints used: " + used + " of " + MAX_BREAKPOINTS + " (tools, system blocks and automatic caching count)." })
    ];
    return this.section("System prompt", path, children, "Write the prompt as it is meant to read, line breaks included. A cache breakpoint caches everything up to and including its block.");
  };

  Form.prototype.systemBlock = function (config, prefix, index) {
    var form = this;
    var single = index === null;
    var path = single ? join(prefix, "system") : join(prefix, "system") + "[" + index + "]";
    var block = single ? null : config.system[index];
    var area = single
      ? this.textarea(config, "system", { rows: 6, spellcheck: "true" })
      : this.textarea(block, "text", { rows: 6, spellcheck: "true" });
    var cached = !single && block && typeof block === "object" && "cache_control" in block;
    var toggle = el("input", {
      attrs: { type: "checkbox", checked: cached },
      on: {
        change: function (event) {
          var target = block;
          if (single) {
            target = { type: "text", text: config.system };
            config.system = [target];
          }
          if (event.target.checked) { target.cache_control = { type: "ephemeral" }; } else { delete target.cache_control; }
          form.changed(true);
        }
      }
    });
    toggle.setAttribute("data-key", path + ":cache");
    var cacheField = el("div", { className: "form-check", attrs: { "data-path": single ? join(prefix, "system") + "[0].cache_control" : path + ".cache_control" } }, [
      el("label", {}, [toggle, " Cache breakpoint after this block"])
    ]);
    if (cached) {
      var ttl = this.choice(block.cache_control.ttl, ["5m", "1h"], { "5m": "5 minutes", "1h": "1 hour" }, "Default (5 minutes)", "the API");
      ttl.addEventListener("change", function () {
        if (ttl.value) { block.cache_control.ttl = ttl.value; } else { delete block.cache_control.ttl; }
        form.changed(false);
      });
      ttl.setAttribute("aria-label", "Cache lifetime");
      cacheField.appendChild(ttl);
    }
    var label = single ? "Prompt" : "Block " + (index + 1);
    var field = this.field(label, path, area);
    field.classList.add("system-block");
    field.appendChild(el("div", { className: "block-tools" }, [cacheField, this.button("Remove block", function () {
      if (single || config.system.length === 1) { delete config.system; } else { config.system.splice(index, 1); }
      form.changed(true);
    }, "btn-ghost")]));
    return field;
  };

  function countBreakpoints(config) {
    var count = "cache_control" in config ? 1 : 0;
    ["tools", "system"].forEach(function (name) {
      (Array.isArray(config[name]) ? config[name] : []).forEach(function (item) {
        if (item && typeof item === "object" && "cache_control" in item) { count += 1; }
      });
    });
    return count;
  }

  // Tools

  Form.prototype.toolsSection = function (config, prefix) {
    var form = this;
    var path = join(prefix, "tools");
    var tools = Array.isArray(config.tools) ? config.tools : [];
    var items = tools.map(function (tool, index) { return form.tool(config, tool, path + "[" + index + "]", index); });
    var add = this.button("Add a tool", function () {
      config.tools = tools.concat([{ name: "", description: "", input_schema: { type: "object", properties: {}, required: [] } }]);
      form.changed(true);
      var inputs = form.container.querySelectorAll("[data-key=\"" + path + "[" + tools.length + "].name:INPUT\"]");
      if (inputs.length) { inputs[0].focus(); }
    });
    return this.section("Tools", path, items.concat([el("div", { className: "button-row" }, [add])]),
      items.length ? null : "No tools. A tool has a name, a description the model reads, and a JSON Schema of its input.");
  };

  Form.prototype.tool = function (config, tool, path, index) {
    var form = this;
    var remove = this.button("Remove tool", function () {
      form.setDraft(tool, "input_schema", null);
      form.setDraft(config.tools, index, null);
      config.tools.splice(index, 1);
      if (!config.tools.length) { delete config.tools; }
      form.changed(true);
    }, "btn-ghost");
    var kind = tool && typeof tool === "object" ? tool.type || "custom" : "custom";
    var title = kind === "custom" ? "Tool " + (index + 1) + (tool.name ? ": " + tool.name : "") : kind === "mcp_toolset" ? "MCP toolset" : "Server tool";
    var heading = el("h4", { text: title });
    var parts = [];
    if (kind === "custom" && tool && typeof tool === "object") {
      var schema = this.jsonArea(tool, "input_schema", 8);
      var name = titled(heading, "Tool " + (index + 1), this.input(tool, "name", { spellcheck: "false", pattern: "[a-zA-Z0-9_-]{1,128}" }));
      parts = [
        this.field("Name", path + ".name", name, "Letters, digits, _ and -."),
        this.field("Description", path + ".description", this.textarea(tool, "description", { rows: 2, "data-optional": true }), "What the tool does and when to use it."),
        this.field("Input schema (JSON Schema)", path + ".input_schema", schema, "An object schema, e.g. {\"type\": \"object\", \"properties\": {…}, \"required\": […]}.")
      ];
    } else if (kind === "mcp_toolset") {
      parts = [el("p", { className: "hint", text: "The tools of MCP server “" + tool.mcp_server_name + "” (see MCP servers)." })];
    } else {
      parts = [this.field("Server tool " + kind + " (JSON)", path, this.jsonArea(config.tools, index, 5))];
    }
    return el("div", { className: "list-item", attrs: { "data-path": path } },
      [el("div", { className: "list-item-head" }, [heading, remove])].concat(parts));
  };

  // MCP servers: each comes with the mcp_toolset that exposes its tools

  Form.prototype.serversSection = function (config, prefix) {
    var form = this;
    var path = join(prefix, "mcp_servers");
    var servers = Array.isArray(config.mcp_servers) ? config.mcp_servers : [];
    var items = servers.map(function (server, index) { return form.server(config, server, path + "[" + index + "]", index); });
    var add = this.button("Add an MCP server", function () {
      config.mcp_servers = servers.concat([{ type: "url", name: "", url: "https://" }]);
      config.tools = (Array.isArray(config.tools) ? config.tools : []).concat([{ type: "mcp_toolset", mcp_server_name: "" }]);
      form.changed(true);
    });
    return this.section("MCP servers", path, items.concat([el("div", { className: "button-row" }, [add])]),
      "Remote MCP servers whose tools the model may use. Credentials are a secret's name, never the token itself.");
  };

  Form.prototype.server = function (config, server, path, index) {
    var form = this;
    function toolset(name) {
      return (Array.isArray(config.tools) ? config.tools : []).filter(function (tool) {
        return tool && tool.type === "mcp_toolset" && tool.mcp_server_name === name;
      })[0];
    }
    var heading = el("h4", { text: "Server " + (index + 1) + (server.name ? ": " + server.name : "") });
    var name = titled(heading, "Server " + (index + 1), this.input(server, "name", { spellcheck: "false" }));
    name.addEventListener("focus", function () { name.setAttribute("data-was", server.name || ""); });
    name.addEventListener("input", function () {
      var matching = toolset(name.getAttribute("data-was"));
      if (matching) { matching.mcp_server_name = server.name || ""; form.changed(false); }
      name.setAttribute("data-was", server.name || "");
    });
    var remove = this.button("Remove server", function () {
      var matching = toolset(server.name);
      config.mcp_servers.splice(index, 1);
      if (!config.mcp_servers.length) { delete config.mcp_servers; }
      if (matching) {
        config.tools.splice(config.tools.indexOf(matching), 1);
        if (!config.tools.length) { delete config.tools; }
      }
      form.changed(true);
    }, "btn-ghost");
    var known = this.secrets.map(function (secret) { return secret.name; });
    return el("div", { className: "list-item", attrs: { "data-path": path } }, [
      el("div", { className: "list-item-head" }, [heading, remove]),
      this.field("Name", path + ".name", name),
      this.field("URL", path + ".url", this.input(server, "url", { type: "url", spellcheck: "false" })),
      this.field("Authorization secret", path + ".authorization_secret",
        this.input(server, "authorization_secret", { list: "secret-names", spellcheck: "false", placeholder: "DOCS_MCP_TOKEN" }),
        "The name of the secret holding the bearer token; services read it from their environment variable of that name."
          + (known.length ? " Secrets already in use: " + known.join(", ") + "." : ""))
    ]);
  };

  // Subagents: each a name, a description and a config of its own

  Form.prototype.subagentsSection = function (config, prefix) {
    var form = this;
    var path = join(prefix, "subagents");
    var subagents = Array.isArray(config.subagents) ? config.subagents : [];
    var items = subagents.map(function (subagent, index) {
      var itemPath = path + "[" + index + "]";
      var remove = form.button("Remove subagent", function () {
        config.subagents.splice(index, 1);
        if (!config.subagents.length) { delete config.subagents; }
        form.changed(true);
      }, "btn-ghost");
      var nested = subagent && typeof subagent.config === "object" && subagent.config !== null && !Array.isArray(subagent.config)
        ? form.configSections(subagent.config, itemPath + ".config", false)
        : [el("p", { className: "hint", text: "This subagent's config is not an object; edit it in the text view." })];
      var summary = el("summary", { text: "Subagent " + (index + 1) + (subagent.name ? ": " + subagent.name : "") });
      return el("details", { className: "subagent", attrs: { open: true, "data-path": itemPath } }, [
        summary,
        el("div", { className: "list-item-head" }, [el("span"), remove]),
        form.field("Name", itemPath + ".name", titled(summary, "Subagent " + (index + 1), form.input(subagent, "name", { spellcheck: "false" }))),
        form.field("When to delegate to it", itemPath + ".description", form.textarea(subagent, "description", { rows: 2, "data-optional": true })),
        el("div", { className: "subagent-config", attrs: { "data-path": itemPath + ".config" } }, nested)
      ]);
    });
    var add = this.button("Add a subagent", function () {
      config.subagents = subagents.concat([{ name: "", description: "", config: { model: config.model, max_tokens: 1024 } }]);
      form.changed(true);
    });
    return this.section("Subagents", path, items.concat([el("div", { className: "button-row" }, [add])]),
      items.length ? null : "Agents this config can delegate to, each with its own model, prompt and tools.");
  };

  // Issues beside their fields

  Form.prototype.place = function () {
    var fields = Array.prototype.slice.call(this.container.querySelectorAll("[data-path]"));
    Array.prototype.forEach.call(this.container.querySelectorAll(".field-issue:not(.json-problem)"), function (node) { node.remove(); });
    fields.forEach(function (field) { field.classList.remove("has-error", "has-warning"); });
    var loose = [];
    this.issues.forEach(function (issue) {
      var best = null;
      fields.forEach(function (field) {
        var path = field.getAttribute("data-path");
        if (covers(path, issue.path) && (!best || path.length > best.getAttribute("data-path").length)) { best = field; }
      });
      if (!best) {
        loose.push(issue);
        return;
      }
      best.classList.add("has-" + issue.severity);
      best.appendChild(el("p", { className: "field-issue field-issue-" + issue.severity, text: issue.message }));
    });
    var box = this.container.querySelector("#form-issues");
    if (!box) { return; }
    box.hidden = !loose.length;
    box.replaceChildren.apply(box, loose.map(function (issue) {
      return el("p", { className: "field-issue field-issue-" + issue.severity }, [
        issue.path ? el("code", { text: issue.path }) : null, issue.path ? " " : "", issue.message
      ]);
    }));
  };

  Form.prototype.reveal = function (path) {
    var target = path === null ? this.container.querySelector(".json-problem") : null;
    var best = null;
    if (path !== null) {
      Array.prototype.forEach.call(this.container.querySelectorAll("[data-path]"), function (field) {
        var fieldPath = field.getAttribute("data-path");
        if (covers(fieldPath, path) && (!best || fieldPath.length > best.getAttribute("data-path").length)) { best = field; }
      });
    }
    target = target || best || this.container.querySelector("#form-issues");
    if (!target) { return; }
    var details = target.closest("details");
    if (details) { details.open = true; }
    target.scrollIntoView({ block: "center" });
    var control = target.matches("input, select, textarea") ? target : (target.closest("[data-path]") || target).querySelector("input, select, textarea");
    if (control) { control.focus({ preventScroll: true }); }
  };

  function ready() {
    var editor = document.querySelector("textarea[data-checked-by]");
    var container = document.getElementById("config-form");
    var data = document.getElementById("editor-references");
    if (!editor || !container || !data) {
      return;
    }
    new Form(editor, container, JSON.parse(data.textContent)).start();
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", ready);
  } else {
    ready();
  }
})();
