// A small CLI over typage (npm age-encryption) for the interoperability tests in
// tests/archive/test_age_mlkem.py:
//
//   node interop.mjs keygen                        -> {"identity": ..., "recipient": ...} (hybrid)
//   node interop.mjs recipient IDENTITY_FILE       -> the recipient of the file's first identity
//   node interop.mjs encrypt IN OUT RECIPIENT...   -> OUT = age file of IN
//   node interop.mjs decrypt IN OUT IDENTITY_FILE  -> OUT = plaintext of IN
//
// Errors go to stderr with exit status 1.
import { readFileSync, writeFileSync } from "node:fs";
import * as age from "age-encryption";

function readIdentities(path) {
    return readFileSync(path, "utf8")
        .split("\n")
        .map((line) => line.replace(/\r$/, ""))
        .filter((line) => line && !line.startsWith("#"));
}

async function main(command, args) {
    switch (command) {
        case "keygen": {
            const identity = await age.generateHybridIdentity();
            const recipient = await age.identityToRecipient(identity);
            process.stdout.write(JSON.stringify({ identity, recipient }) + "\n");
            return;
        }
        case "recipient": {
            const [identity] = readIdentities(args[0]);
            process.stdout.write((await age.identityToRecipient(identity)) + "\n");
            return;
        }
        case "encrypt": {
            const [input, output, ...recipients] = args;
            const encrypter = new age.Encrypter();
            for (const recipient of recipients) encrypter.addRecipient(recipient);
            writeFileSync(output, await encrypter.encrypt(readFileSync(input)));
            return;
        }
        case "decrypt": {
            const [input, output, identityFile] = args;
            const decrypter = new age.Decrypter();
            for (const identity of readIdentities(identityFile)) decrypter.addIdentity(identity);
            writeFileSync(output, await decrypter.decrypt(readFileSync(input)));
            return;
        }
        default:
            throw new Error(`unknown command ${JSON.stringify(command)}`);
    }
}

main(process.argv[2], process.argv.slice(3)).catch((error) => {
    process.stderr.write(`typage: ${error && error.message ? error.message : error}\n`);
    process.exit(1);
});
