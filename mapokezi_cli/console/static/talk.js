// The talk page: the microphone to the console's WebSocket, the receptionist back to the speaker.

const $ = (id) => document.getElementById(id);
let socket = null;
let context = null;
let microphone = null;
let sent = 0;
let heard = 0;
let kills = 0;

function log(text) {
  const item = document.createElement("li");
  item.textContent = text; // never innerHTML: this text comes from the call
  $("log").appendChild(item);
}

function setState(text) {
  $("state").textContent = text;
}

async function startAudio(rate) {
  context = new AudioContext({ sampleRate: rate });
  await context.audioWorklet.addModule("/static/worklets.js");
  const source = context.createMediaStreamSource(microphone);
  const capture = new AudioWorkletNode(context, "capture");
  capture.port.onmessage = (event) => {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(event.data);
      $("sent").textContent = String(++sent);
    }
  };
  const mute = context.createGain();
  mute.gain.value = 0; // the capture node must be pulled, but the caller need not hear herself
  source.connect(capture).connect(mute).connect(context.destination);
  const playback = new AudioWorkletNode(context, "playback");
  playback.connect(context.destination);
  await context.resume();
  return playback;
}

async function call() {
  $("call").disabled = true;
  $("result").textContent = "";
  sent = heard = kills = 0;
  try {
    microphone = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true },
    });
  } catch (error) {
    setState("no microphone");
    log(`The microphone is not available: ${error.message}`);
    $("call").disabled = false;
    return;
  }
  let playback = null;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/talk/ws`);
  socket.binaryType = "arraybuffer";
  setState("calling");
  socket.onopen = () => {
    socket.send(JSON.stringify({ type: "start", to: $("to").value, from: $("from").value }));
    $("hangup").disabled = false;
  };
  socket.onmessage = async (event) => {
    if (typeof event.data !== "string") {
      heard += event.data.byteLength; // before the transfer below detaches the buffer
      if (playback) playback.port.postMessage(event.data, [event.data]);
      $("heard").textContent = String(heard);
      return;
    }
    const message = JSON.parse(event.data);
    if (message.type === "stream") {
      log(`stream open: ${message.rate} Hz, ${message.subprotocol}`);
      playback = await startAudio(message.rate);
      setState("connected");
    } else if (message.type === "killAudio") {
      if (playback) playback.port.postMessage("kill");
      $("kills").textContent = String(++kills);
      log("killAudio: the receptionist's queued audio was dropped");
    } else if (message.type === "log") {
      log(message.text);
    } else if (message.type === "ended") {
      finish(message);
    }
  };
  socket.onclose = () => {
    if ($("state").textContent !== "ended") finish({ ok: false, errors: ["the console closed"] });
  };
}

function finish(message) {
  setState("ended");
  $("hangup").disabled = true;
  $("call").disabled = false;
  if (message.verbs) log(`the platform ran: ${message.verbs.join(", ")}`);
  for (const error of message.errors || []) log(`error: ${error}`);
  for (const warning of message.warnings || []) log(`warning: ${warning}`);
  if (message.call_id) {
    const link = document.createElement("a");
    link.id = "call-link";
    link.href = `/calls/${encodeURIComponent(message.call_id)}`;
    link.textContent = "See the call";
    $("result").replaceChildren(link);
  }
  if (microphone) microphone.getTracks().forEach((track) => track.stop());
  if (context) context.close();
  context = microphone = null;
}

function hangUp() {
  if (socket && socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify({ type: "hangup" }));
    log("you hung up");
  }
  $("hangup").disabled = true;
}

$("call").addEventListener("click", call);
$("hangup").addEventListener("click", hangUp);
