// Small helpers the console's pages share; everything works without them, they only save typing.
// A canned reply picked from the list fills the reply box (the agent still reviews and sends it).
document.addEventListener("change", (event) => {
  const picker = event.target.closest("select[data-canned-for]");
  if (!picker || !picker.value) return;
  const box = document.getElementById(picker.dataset.cannedFor);
  box.value = picker.value;
  box.focus();
  picker.value = "";
});
// Keep the conversation scrolled to the newest message after each live refresh.
function scrollMessages() {
  document.querySelectorAll("#messages .messages").forEach((list) => { list.scrollTop = list.scrollHeight; });
}
document.addEventListener("DOMContentLoaded", scrollMessages);
document.addEventListener("htmx:afterSwap", (event) => { if (event.target.id === "messages") scrollMessages(); });
